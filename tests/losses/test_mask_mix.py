"""Tests of mix_with_mask (CutMix's a * (1 - M) + b * M)."""

from __future__ import annotations

import pytest
import torch

from monai_masksup.losses import mix_with_mask


def test_inside_the_mask_comes_from_b_exactly_and_outside_from_a():
    # values whose difference does not round-trip: a + (b - a) would not give b exactly
    a = torch.full((1, 2, 2, 2), 1e8)
    b = torch.full((1, 2, 2, 2), 1.0)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    mixed = mix_with_mask(a, b, mask)
    expected = torch.tensor([[1.0, 1e8], [1e8, 1.0]]).expand(1, 2, 2, 2)
    assert torch.equal(mixed, expected)


def test_soft_mask_blends_linearly_in_3d():
    a, b = torch.zeros(1, 1, 2, 1, 1), torch.full((1, 1, 2, 1, 1), 4.0)
    mixed = mix_with_mask(a, b, torch.full((1, 1, 2, 1, 1), 0.25))
    assert torch.equal(mixed, torch.ones(1, 1, 2, 1, 1))


def test_different_shapes_are_rejected():
    with pytest.raises(ValueError, match="same shape"):
        mix_with_mask(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5), torch.zeros(1, 1, 4, 4))


def test_mask_that_does_not_broadcast_is_rejected():
    with pytest.raises(ValueError, match="does not broadcast"):
        mix_with_mask(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4), torch.zeros(2, 1, 4, 5))


def test_mask_that_would_enlarge_the_batch_is_rejected():
    with pytest.raises(ValueError, match="does not broadcast"):
        mix_with_mask(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), torch.zeros(2, 1, 4, 4))
