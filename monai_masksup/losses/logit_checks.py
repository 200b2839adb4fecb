"""Checks of the logits that the plugin's losses compare pairwise (MaskSup's two branches, student and teacher)."""

from __future__ import annotations

import torch
from monai.utils import convert_to_tensor

__all__ = ["as_plain_tensor", "check_paired_logits"]


def as_plain_tensor(x: torch.Tensor, name: str) -> torch.Tensor:
    """
    Return ``x`` without MetaTensor metadata (the autograd graph is kept), so that a loss neither pays for nor
    returns metadata.

    Args:
        x: a tensor (a MetaTensor is unwrapped).
        name: the argument's name, for the error.

    Raises:
        TypeError: when ``x`` is not a tensor.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    return convert_to_tensor(x, track_meta=False)


def check_paired_logits(first: torch.Tensor, second: torch.Tensor, first_name: str, second_name: str) -> None:
    """
    Check that two logit tensors are ``(B, C, *spatial)`` of the same shape.

    Args:
        first: logits ``(B, C, *spatial)``.
        second: logits to compare with ``first``.
        first_name: the first argument's name, for the errors.
        second_name: the second argument's name, for the errors.

    Raises:
        ValueError: when the shapes differ, or there is no spatial dimension.
    """
    if first.shape != second.shape:
        raise ValueError(
            f"{first_name} and {second_name} must have the same shape, "
            f"got {tuple(first.shape)} and {tuple(second.shape)}."
        )
    if first.ndim < 3:
        raise ValueError(
            f"{first_name} and {second_name} must be (B, C, *spatial) logits with at least one spatial dim, "
            f"got shape {tuple(first.shape)}."
        )
