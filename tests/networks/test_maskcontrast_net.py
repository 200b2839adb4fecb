"""Tests of MaskContrastNet and the hand-off of its trunk to a segmentation network (load_pretrained_trunk)."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import BasicUNet

from monai_masksup.networks import LeViTUNet, MaskContrastNet, load_pretrained_trunk

FEATURES = (4, 4, 8, 8, 16, 4)


def _net() -> MaskContrastNet:
    return MaskContrastNet(in_channels=3, features=FEATURES, embedding_dim=6)


def test_basicunet_trunk_gives_embedding_and_saliency_maps():
    embedding, saliency = _net()(torch.randn(2, 3, 32, 32))
    assert embedding.shape == (2, 6, 32, 32)
    assert saliency.shape == (2, 1, 32, 32)


def test_heads_are_1x1_and_saliency_has_no_bias():
    net = _net()
    assert net.embedding_head.kernel_size == (1, 1) and net.embedding_head.bias is not None
    assert net.saliency_head.kernel_size == (1, 1) and net.saliency_head.bias is None
    assert isinstance(net.trunk.final_conv, torch.nn.Identity)
    assert net.trunk_channels == FEATURES[-1]


def test_default_embedding_has_32_dimensions():
    assert MaskContrastNet(features=FEATURES).embedding_head.out_channels == 32


def test_3d_trunk():
    net = MaskContrastNet(spatial_dims=3, in_channels=1, features=FEATURES)
    embedding, saliency = net(torch.randn(2, 1, 32, 32, 32))
    assert embedding.shape == (2, 32, 32, 32, 32) and saliency.shape == (2, 1, 32, 32, 32)


def test_levit_unet_trunk_with_its_head_replaced():
    net = MaskContrastNet(LeViTUNet(variant="128s", in_channels=3, out_channels=1), last_layer="head")
    embedding, saliency = net(torch.randn(1, 3, 224, 224))
    assert embedding.shape == (1, 32, 224, 224) and saliency.shape == (1, 1, 224, 224)


def test_unknown_last_layer_is_a_clear_error():
    with pytest.raises(ValueError, match="no layer 'head'"):
        MaskContrastNet(BasicUNet(2, 3, 1, features=FEATURES), last_layer="head")


def test_hand_off_loads_every_trunk_weight_and_no_head_weight(tmp_path):
    pretrained = _net()
    with torch.no_grad():
        for p in pretrained.parameters():
            p.fill_(0.5)
    path = tmp_path / "pretrained.pt"
    torch.save(pretrained.state_dict(), path)
    target = BasicUNet(spatial_dims=2, in_channels=3, out_channels=1, features=FEATURES)
    final_before = {k: v.clone() for k, v in target.final_conv.state_dict().items()}
    load_pretrained_trunk(target, path)
    trunk = {k.removeprefix("trunk."): v for k, v in pretrained.state_dict().items() if k.startswith("trunk.")}
    target_state = target.state_dict()
    for name, value in trunk.items():
        assert torch.equal(target_state[name], value), name
    # the output layer keeps its own initialisation, and no head weight exists under any name in the target
    for name, value in target.final_conv.state_dict().items():
        assert torch.equal(value, final_before[name])
    assert set(target_state) - set(trunk) == {f"final_conv.{k}" for k in final_before}


def test_hand_off_reads_a_training_checkpoint(tmp_path):
    pretrained = _net()
    path = tmp_path / "checkpoint_epoch=1.pt"
    torch.save({"model": pretrained.state_dict(), "optimizer": {}}, path)
    target = BasicUNet(spatial_dims=2, in_channels=3, out_channels=2, features=FEATURES)
    load_pretrained_trunk(target, path)
    assert torch.equal(target.conv_0.conv_0.conv.weight, pretrained.trunk.conv_0.conv_0.conv.weight)


def test_hand_off_without_checkpoint_is_the_identity():
    target = BasicUNet(spatial_dims=2, in_channels=3, out_channels=1, features=FEATURES)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    assert load_pretrained_trunk(target, None) is target
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items())


def test_hand_off_to_another_architecture_is_a_clear_error(tmp_path):
    path = tmp_path / "pretrained.pt"
    torch.save(_net().state_dict(), path)
    target = BasicUNet(spatial_dims=2, in_channels=3, out_channels=1, features=(8, 8, 8, 8, 16, 8))
    with pytest.raises(ValueError, match="trunk weights do not fit BasicUNet"):
        load_pretrained_trunk(target, path)


def test_hand_off_of_a_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        load_pretrained_trunk(BasicUNet(2, 3, 1, features=FEATURES), tmp_path / "nothing.pt")
