from __future__ import annotations

import pytest
import torch

from monai_masksup.data import bscan_slice_inferer


def _tiny_net():
    torch.manual_seed(0)
    return torch.nn.Conv2d(1, 3, kernel_size=3, padding=1).eval()


def test_whole_bscans_give_the_network_output_of_each_bscan():
    net = _tiny_net()
    volume = torch.rand(2, 1, 10, 12, 5)  # (B, C, width, depth, n_bscans)
    with torch.no_grad():
        out = bscan_slice_inferer(sw_batch_size=2)(volume, net)
        expected = torch.stack([net(volume[..., k]) for k in range(5)], dim=-1)
    assert out.shape == (2, 3, 10, 12, 5)
    torch.testing.assert_close(out, expected)


def test_windows_smaller_than_a_bscan_cover_the_volume():
    net = _tiny_net()
    volume = torch.rand(1, 1, 10, 12, 3)
    with torch.no_grad():
        out = bscan_slice_inferer(roi_size=(8, 8), overlap=0.5)(volume, net)
    assert out.shape == (1, 3, 10, 12, 3) and torch.isfinite(out).all()


def test_roi_size_must_be_2d():
    with pytest.raises(ValueError, match=r"roi_size must be the 2D B-scan window"):
        bscan_slice_inferer(roi_size=(8, 8, 1))
