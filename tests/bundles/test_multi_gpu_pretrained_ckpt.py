"""Both bundles' multi_gpu_train.json build their DDP network through ``pretrained_ckpt``, as train.json does."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from monai.bundle import ConfigParser
from monai.networks.nets import BasicUNet

from monai_masksup.networks import MaskContrastNet
from tests.bundles.conftest import GLAS_BUNDLE, KVASIR_BUNDLE, configs

DEMO_FEATURES = (8, 8, 16, 32, 64, 8)  # demo.json's BasicUNet


@pytest.fixture
def one_process_group(tmp_path):
    """A one-process gloo group, so that the config can build its ``DistributedDataParallel`` on the CPU."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


BUNDLES = pytest.mark.parametrize("bundle", [GLAS_BUNDLE, KVASIR_BUNDLE], ids=["glas", "kvasir"])


def _ddp_network(bundle, **overrides):
    parser = ConfigParser()
    parser.read_config(configs(bundle, "train.json", "demo.json", "multi_gpu_train.json"))
    parser.update({"device": "$torch.device('cpu')", **overrides})
    return parser.get_parsed_content("network")


@BUNDLES
def test_ddp_network_loads_every_pretrained_trunk_weight_and_no_head(bundle, tmp_path, one_process_group):
    torch.manual_seed(1)
    pretrained = MaskContrastNet(trunk=BasicUNet(spatial_dims=2, in_channels=3, out_channels=1, features=DEMO_FEATURES))
    with torch.no_grad():
        for p in pretrained.parameters():
            p.add_(1.0)  # far from any fresh initialisation, so a weight that was not loaded cannot match
    ckpt = tmp_path / "maskcontrast_pretrained.pt"
    torch.save(pretrained.state_dict(), ckpt)

    network = _ddp_network(bundle, pretrained_ckpt=str(ckpt))
    assert isinstance(network, torch.nn.parallel.DistributedDataParallel)
    state = network.module.state_dict()
    trunk = {k.removeprefix("trunk."): v for k, v in pretrained.state_dict().items() if k.startswith("trunk.")}
    assert set(trunk) == set(state) - {"final_conv.weight", "final_conv.bias"}
    for name, value in trunk.items():
        assert torch.equal(state[name], value), name
    # the segmentation head keeps its own initialisation (1 class, not the 32-channel embedding head)
    assert state["final_conv.weight"].shape == (1, 8, 1, 1)
    assert not torch.equal(state["final_conv.weight"], pretrained.embedding_head.weight[:1])


@BUNDLES
def test_ddp_network_without_pretrained_ckpt_is_the_plain_network(bundle, one_process_group):
    torch.manual_seed(1)
    expected = BasicUNet(spatial_dims=2, in_channels=3, out_channels=1, features=DEMO_FEATURES).state_dict()
    torch.manual_seed(1)
    network = _ddp_network(bundle)
    assert type(network.module).__name__ == "BasicUNet"
    for name, value in network.module.state_dict().items():
        assert torch.equal(value, expected[name]), name


@BUNDLES
def test_ddp_network_with_a_missing_pretrained_ckpt_fails_naming_the_path(bundle, tmp_path, one_process_group):
    missing = tmp_path / "nowhere.pt"
    with pytest.raises(Exception) as info:
        _ddp_network(bundle, pretrained_ckpt=str(missing))
    chain, exc = [], info.value
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert any(isinstance(e, FileNotFoundError) and str(missing) in str(e) for e in chain)
