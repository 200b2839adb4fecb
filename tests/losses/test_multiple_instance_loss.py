"""Tests of MultipleInstanceLoss on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from monai_masksup.losses import MultipleInstanceLoss


def test_average_pooled_logits_against_image_labels():
    # class 0 logits average to 0 (BCE ln2 with label 1), class 1 logits average to ln3 (sigmoid .75, label 0: -ln .25)
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 0] = torch.tensor([[2.0, -2.0], [1.0, -1.0]])
    logits[0, 1] = math.log(3.0)
    value = MultipleInstanceLoss()(logits, torch.tensor([[1.0, 0.0]]))
    assert value.item() == pytest.approx((math.log(2) + math.log(4)) / 2, rel=1e-6)


def test_levels_are_averaged():
    levels = [torch.zeros(1, 2, 1, 1), torch.full((1, 2, 4, 4), math.log(3.0))]
    target = torch.tensor([[1.0, 1.0]])
    # level 0: ln2 per class; level 1: -ln(.75) per class
    expected = (math.log(2) + math.log(4 / 3)) / 2
    assert MultipleInstanceLoss()(levels, target).item() == pytest.approx(expected, rel=1e-6)


def test_bad_targets_are_refused():
    with pytest.raises(ValueError, match=r"\(B, K\)"):
        MultipleInstanceLoss()(torch.zeros(1, 2, 2, 2), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="0 and 1"):
        MultipleInstanceLoss()(torch.zeros(1, 2, 2, 2), torch.full((1, 2), 0.5))
