"""The Kvasir bundle's MaskContrast pre-training override on the generated demo polyps, and the hand-off of its
trunk to MaskSup fine-tuning through train.json's ``pretrained_ckpt``."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from monai.bundle import ConfigParser

from tests.bundles.conftest import KVASIR_BUNDLE, TINY_RUN, bundle_run, configs, subprocess_env

PRETRAINED = "maskcontrast_pretrained.pt"


@pytest.fixture(scope="module")
def pretrain_run(tmp_path_factory):
    """One tiny pre-training epoch without a configured data set (the demo polyps are generated)."""
    root = tmp_path_factory.mktemp("kvasir_pretrain")
    overrides = {"bundle_root": str(root), **TINY_RUN, "epochs": 1, "queue_size": 16}
    bundle_run(KVASIR_BUNDLE, ["train.json", "demo.json", "pretrain_maskcontrast.json"], **overrides)
    return root


@pytest.mark.slow
def test_pretrain_override_runs_one_tiny_epoch_and_saves_trunk_and_heads(pretrain_run):
    models = pretrain_run / "models_maskcontrast"
    state = torch.load(models / PRETRAINED, map_location="cpu", weights_only=True)
    assert {k.split(".")[0] for k in state} == {"trunk", "embedding_head", "saliency_head"}
    assert state["embedding_head.weight"].shape == (32, 8, 1, 1)  # demo BasicUNet: 8 trunk channels
    checkpoint = torch.load(models / "checkpoint_epoch=1.pt", map_location="cpu", weights_only=True)
    assert {"key_network", "prototype_queue"} <= set(checkpoint["extra_state"])
    assert int(checkpoint["extra_state"]["prototype_queue"]["queue_ptr"]) % 4 == 0  # whole batches of 4 enqueued


@pytest.mark.slow
def test_pretrained_ckpt_hands_the_pretrained_trunk_to_finetuning(pretrain_run):
    ckpt = pretrain_run / "models_maskcontrast" / PRETRAINED
    pretrained = torch.load(ckpt, map_location="cpu", weights_only=True)
    parser = ConfigParser()
    parser.read_config(configs(KVASIR_BUNDLE, "train.json", "demo.json"))
    parser.update(
        {
            "device": "$torch.device('cpu')",
            "pretrained_ckpt": str(ckpt),
        }
    )
    state = parser.get_parsed_content("network").state_dict()
    trunk = {k.removeprefix("trunk."): v for k, v in pretrained.items() if k.startswith("trunk.")}
    assert set(trunk) == set(state) - {"final_conv.weight", "final_conv.bias"}
    for name, value in trunk.items():
        assert torch.equal(state[name], value), name


@pytest.mark.slow
def test_override_builds_maskcontrast_nets_in_a_fresh_interpreter():
    # only the configs' own imports exist in a fresh process
    code = (
        "import sys; from monai.bundle import ConfigParser\n"
        "for names, extra in ((sys.argv[1:4], {}), ([sys.argv[1], sys.argv[3]], {'network_def#variant': '128s'})):\n"
        "    p = ConfigParser(); p.read_config(names); p.update({'device': '$torch.device(\"cpu\")', **extra})\n"
        "    n = p.get_parsed_content('network')\n"
        "    print(type(n).__name__, type(n.trunk).__name__, n.last_layer, n.embedding_head.out_channels)\n"
    )
    names = configs(KVASIR_BUNDLE, "train.json", "demo.json", "pretrain_maskcontrast.json")
    out = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, env=subprocess_env())
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == [
        "MaskContrastNet BasicUNet final_conv 32",
        "MaskContrastNet LeViTUNet head 32",
    ]
