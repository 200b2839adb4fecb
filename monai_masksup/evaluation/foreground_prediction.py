"""Foreground probability and binary foreground mask from a binary-segmentation network output."""

from __future__ import annotations

import torch


def foreground_probability(logits: torch.Tensor) -> torch.Tensor:
    """Foreground probability of a binary segmentation network output.

    One output channel is read as foreground logits (sigmoid, as in MaskSup's binary models);
    two channels are read as background/foreground logits (softmax, foreground = channel 1).

    Args:
        logits: network output ``(B, 1, *spatial)`` or ``(B, 2, *spatial)``.

    Returns:
        float tensor ``(B, 1, *spatial)`` in [0, 1].

    Raises:
        ValueError: when ``logits`` is not batched channel-first or has more than two channels.
    """
    if logits.ndim < 3:
        raise ValueError(f"logits: expected (B, C, *spatial) with C in (1, 2), got shape {tuple(logits.shape)}.")
    logits = logits.float()
    if logits.shape[1] == 1:
        return torch.sigmoid(logits)
    if logits.shape[1] == 2:
        return torch.softmax(logits, dim=1)[:, 1:2]
    raise ValueError(
        f"logits: a binary segmentation output has 1 or 2 channels, got {logits.shape[1]} "
        f"(shape {tuple(logits.shape)})."
    )


def binarise_foreground(logits: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Binary foreground mask ``probability > threshold`` (the MaskSup evaluation protocol).

    Args:
        logits: network output ``(B, 1, *spatial)`` or ``(B, 2, *spatial)``.
        threshold: foreground probability above which a pixel is foreground.

    Returns:
        float tensor ``(B, 1, *spatial)`` in {0, 1}.
    """
    return (foreground_probability(logits) > threshold).float()


def foreground_channel(mask: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """Foreground channel of a binarised mask: itself when it has one channel, channel 1 of a one-hot pair.

    Args:
        mask: binarised mask ``(B, 1, *spatial)`` or one-hot ``(B, 2, *spatial)``.
        name: argument name used in the error message.

    Returns:
        float tensor ``(B, 1, *spatial)``.

    Raises:
        ValueError: when ``mask`` is not batched channel-first or has more than two channels.
    """
    if mask.ndim < 3 or mask.shape[1] not in (1, 2):
        raise ValueError(
            f"{name}: expected a binarised mask (B, 1, *spatial) or one-hot (B, 2, *spatial), "
            f"got shape {tuple(mask.shape)}."
        )
    return mask[:, -1:].float()
