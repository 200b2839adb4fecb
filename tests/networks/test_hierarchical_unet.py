"""Tests of HierarchicalUNet: the released architecture's size and outputs, eval-mode single output, TorchScript."""

from __future__ import annotations

import json

import pytest
import torch
from monai.bundle import verify_net_in_out
from monai.inferers import SlidingWindowInferer

from monai_masksup.losses import MultiLabelDeepSupervisionLoss
from monai_masksup.networks import HierarchicalUNet, HierarchicalUpBlock

# torch 2.13 deprecates TorchScript in favour of torch.export; scripting still works
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")


def _small(**kwargs) -> HierarchicalUNet:
    torch.manual_seed(0)
    return HierarchicalUNet(features=(4, 8, 8, 16, 16), head_channels=4, **kwargs)


def test_released_configuration_has_17_338_520_parameters():
    net = HierarchicalUNet(in_channels=1, out_channels=4)
    assert sum(p.numel() for p in net.parameters()) == 17_338_520


def test_train_mode_returns_standard_logits_and_levels_coarse_to_fine():
    net = _small(out_channels=4).train()
    logits, levels = net(torch.randn(2, 1, 32, 32))
    assert logits.shape == (2, 4, 32, 32)
    assert [tuple(z.shape[2:]) for z in levels] == [(2, 2), (4, 4), (8, 8), (16, 16), (32, 32)]
    assert all(z.shape[:2] == (2, 4) for z in levels)


def test_odd_input_levels_are_the_reference_level_shapes():
    # README section 3, oddrect: levels 1x1, 3x2, 7x5, 15x11, 30x22 for a 30x22 input (floor at every pooling)
    logits, levels = _small().train()(torch.randn(2, 1, 30, 22))
    assert logits.shape[2:] == (30, 22)
    assert [tuple(z.shape[2:]) for z in levels] == [(1, 1), (3, 2), (7, 5), (15, 11), (30, 22)]


def test_eval_mode_returns_one_tensor_through_a_monai_inferer():
    net = _small(out_channels=3).eval()
    with torch.no_grad():
        out = SlidingWindowInferer(roi_size=(32, 32), sw_batch_size=2)(torch.randn(1, 1, 48, 40), net)
    assert isinstance(out, torch.Tensor) and out.shape == (1, 3, 48, 40)


def test_3d_network_gives_3d_levels():
    logits, levels = _small(spatial_dims=3, out_channels=2).train()(torch.randn(2, 1, 16, 16, 16))
    assert logits.shape == (2, 2, 16, 16, 16)
    assert [tuple(z.shape[2:]) for z in levels][0] == (1, 1, 1)
    assert levels[-1].shape == logits.shape


def test_dropout_acts_before_the_standard_head_only():
    # every channel dropped: the standard head sees zeros, so its logits are constant in space; levels are not
    logits, levels = _small(dropout=1.0).train()(torch.randn(2, 1, 32, 32))
    assert torch.allclose(logits, logits[..., :1, :1].expand_as(logits))
    assert levels[-1].std() > 0


def test_training_step_reaches_every_parameter():
    net = _small(out_channels=3).train()
    logits, levels = net(torch.randn(2, 1, 32, 32))
    label = torch.randint(0, 3, (2, 1, 32, 32))
    loss = torch.nn.functional.cross_entropy(logits, label[:, 0]) + MultiLabelDeepSupervisionLoss()(levels, label)
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())


def test_torchscript_matches_eager_in_eval_and_train_mode():
    net = _small(out_channels=3).eval()
    x = torch.randn(2, 1, 30, 22)
    scripted = torch.jit.script(net)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x))
    scripted.train()
    logits, levels = scripted(x)
    assert logits.shape == (2, 3, 30, 22) and len(levels) == 5


def test_verify_net_in_out_accepts_the_eval_output(tmp_path):
    meta = {
        "network_data_format": {
            "inputs": {"image": {"type": "image", "num_channels": 1, "spatial_shape": [32, 32], "dtype": "float32"}},
            "outputs": {"pred": {"type": "image", "num_channels": 4, "dtype": "float32"}},
        }
    }
    config = {
        "network_def": {
            "_target_": "monai_masksup.networks.HierarchicalUNet",
            "out_channels": 4,
            "features": [4, 8, 8, 16, 16],
            "head_channels": 4,
        }
    }
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "train.json").write_text(json.dumps(config))
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(tmp_path / "meta.json"),
        config_file=str(tmp_path / "train.json"),
        device="cpu",
    )


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="spatial_dims"):
        HierarchicalUNet(spatial_dims=1)
    with pytest.raises(ValueError, match="features"):
        HierarchicalUNet(features=(64,))


def _double_conv(c_in: int, c_mid: int, c_out: int) -> list[tuple[int, ...]]:
    """Parameter shapes of conv3x3(+bias)-BN-ReLU twice."""
    return [(c_mid, c_in, 3, 3), (c_mid,), (c_mid,), (c_mid,), (c_out, c_mid, 3, 3), (c_out,), (c_out,), (c_out,)]


def _head(c_in: int, classes: int) -> list[tuple[int, ...]]:
    """Parameter shapes of conv1x1(+bias) to 64, BN, ReLU, conv1x1(+bias) to the classes."""
    return [(64, c_in, 1, 1), (64,), (64,), (64,), (classes, 64, 1, 1), (classes,)]


def test_parameter_shapes_are_the_released_layers():
    # encoder 1-64-128-256-512-512, decoder (cat -> cat/2 -> out) 1024-512-256, 512-256-128, 256-128-64, 128-64-64,
    # heads on 512 (bottleneck), 256, 128, 64, 64 (levels) and 64 (standard head)
    expected = _double_conv(1, 64, 64) + _double_conv(64, 128, 128) + _double_conv(128, 256, 256)
    expected += _double_conv(256, 512, 512) + _double_conv(512, 512, 512)
    expected += _double_conv(1024, 512, 256) + _double_conv(512, 256, 128) + _double_conv(256, 128, 64)
    expected += _double_conv(128, 64, 64)
    for width in (512, 256, 128, 64, 64, 64):
        expected += _head(width, 4)
    shapes = [tuple(p.shape) for p in HierarchicalUNet(1, 4).parameters()]
    assert sorted(shapes) == sorted(expected)


def test_up_block_upsamples_with_aligned_corners_and_zero_pads_the_far_end():
    block = HierarchicalUpBlock(2, up_channels=1, skip_channels=1, out_channels=2)
    captured = []
    block.convs.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    x = torch.tensor([[[[0.0, 3.0], [6.0, 9.0]]]])
    skip = torch.full((1, 1, 5, 5), -1.0)
    assert block(x, skip).shape == (1, 2, 5, 5)
    concatenated = captured[0]
    assert torch.equal(concatenated[:, :1], skip)
    # align_corners=True: 2 -> 4 samples at 0, 1/3, 2/3, 1 of the way; the odd fifth row and column are zeros
    expected = torch.zeros(5, 5)
    expected[:4, :4] = torch.tensor([[0.0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]])
    torch.testing.assert_close(concatenated[0, 1], expected)
