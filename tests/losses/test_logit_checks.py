"""Tests of the logit checks shared by the plugin's losses."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor

from monai_masksup.losses.logit_checks import as_plain_tensor, check_paired_logits


def test_metatensor_is_unwrapped_and_keeps_its_graph():
    leaf = torch.ones(1, 1, 2, 2, requires_grad=True)
    plain = as_plain_tensor(MetaTensor(leaf * 3.0), "x")
    assert type(plain) is torch.Tensor
    plain.sum().backward()
    assert torch.equal(leaf.grad, torch.full((1, 1, 2, 2), 3.0))


def test_non_tensor_is_rejected_with_its_name():
    with pytest.raises(TypeError, match="logits must be a torch.Tensor, got list"):
        as_plain_tensor([0.0], "logits")


def test_paired_logits_of_different_shapes_are_rejected_with_both_names():
    with pytest.raises(ValueError, match=r"a and b must have the same shape, got \(1, 2, 3\) and \(1, 2, 4\)"):
        check_paired_logits(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4), "a", "b")


def test_paired_logits_without_spatial_dims_are_rejected():
    with pytest.raises(ValueError, match="at least one spatial dim"):
        check_paired_logits(torch.zeros(1, 2), torch.zeros(1, 2), "a", "b")
