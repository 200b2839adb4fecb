"""The GLaS bundle's MaskContrast pre-training override on the generated demo set, and the hand-off of its trunk
to MaskSup fine-tuning through ``pretrained_ckpt``."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from monai.bundle import ConfigParser

from tests.bundles.conftest import GLAS_BUNDLE, TINY_RUN, bundle_run, configs, subprocess_env


@pytest.fixture(scope="module")
def pretrain_run(tmp_path_factory):
    """One tiny pre-training epoch without a configured data set (the demo set is generated)."""
    root = tmp_path_factory.mktemp("glas_pretrain")
    overrides = {"bundle_root": str(root), **TINY_RUN, "epochs": 1, "queue_size": 16}
    bundle_run(GLAS_BUNDLE, ["train.json", "demo.json", "pretrain_maskcontrast.json"], **overrides)
    return root


@pytest.mark.slow
def test_pretrain_override_runs_one_tiny_epoch(pretrain_run):
    models = pretrain_run / "models_maskcontrast"
    state = torch.load(models / "maskcontrast_pretrained.pt", map_location="cpu", weights_only=True)
    assert {k.split(".")[0] for k in state} == {"trunk", "embedding_head", "saliency_head"}
    checkpoint = torch.load(models / "checkpoint_epoch=1.pt", map_location="cpu", weights_only=True)
    assert {"key_network", "prototype_queue"} <= set(checkpoint["extra_state"])
    # demo set: 24 training images, 20 % validation -> some full batches of 4 went through the queue
    assert int(checkpoint["extra_state"]["prototype_queue"]["queue_ptr"]) % 4 == 0


@pytest.mark.slow
def test_finetuning_config_loads_the_pretrained_trunk_and_no_head(pretrain_run):
    pretrained = torch.load(
        pretrain_run / "models_maskcontrast" / "maskcontrast_pretrained.pt", map_location="cpu", weights_only=True
    )
    parser = ConfigParser()
    parser.read_config(configs(GLAS_BUNDLE, "train.json", "demo.json"))
    parser.update({"pretrained_ckpt": str(pretrain_run / "models_maskcontrast" / "maskcontrast_pretrained.pt"),
                   "device": "$torch.device('cpu')"})
    network = parser.get_parsed_content("network")
    state = network.state_dict()
    trunk = {k.removeprefix("trunk."): v for k, v in pretrained.items() if k.startswith("trunk.")}
    assert set(trunk) == set(state) - {"final_conv.weight", "final_conv.bias"}
    for name, value in trunk.items():
        assert torch.equal(state[name], value), name
    assert state["final_conv.weight"].shape == (1, 8, 1, 1)  # the segmentation head, not a pre-trained head


def test_train_config_without_pretrained_ckpt_builds_the_plain_network():
    parser = ConfigParser()
    parser.read_config(configs(GLAS_BUNDLE, "train.json", "demo.json"))
    parser.update({"device": "$torch.device('cpu')"})
    assert parser.get_parsed_content("pretrained_ckpt") is None
    assert type(parser.get_parsed_content("network")).__name__ == "BasicUNet"


def test_pretrain_override_wraps_the_default_levit_unet_and_replaces_its_head():
    parser = ConfigParser()
    parser.read_config(configs(GLAS_BUNDLE, "train.json", "pretrain_maskcontrast.json"))
    parser.update({"device": "$torch.device('cpu')", "network_def#variant": "128s"})
    network = parser.get_parsed_content("network")
    assert type(network).__name__ == "MaskContrastNet" and network.last_layer == "head"
    assert type(network.trunk).__name__ == "LeViTUNet" and isinstance(network.trunk.head, torch.nn.Identity)
    assert network.embedding_head.out_channels == 32


@pytest.mark.slow
def test_configs_build_their_networks_in_a_fresh_interpreter():
    # in a fresh process only the configs' own imports exist (in this one other tests imported everything)
    code = (
        "import sys; from monai.bundle import ConfigParser\n"
        "for names in (sys.argv[1:3], sys.argv[1:4]):\n"
        "    p = ConfigParser(); p.read_config(names); p.update({'device': '$torch.device(\"cpu\")'})\n"
        "    print(type(p.get_parsed_content('network')).__name__)\n"
    )
    names = configs(GLAS_BUNDLE, "train.json", "demo.json", "pretrain_maskcontrast.json")
    out = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, env=subprocess_env())
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["BasicUNet", "MaskContrastNet"]
