"""Pseudo-labels from a standard head's logits, restricted by weak labels (image-level labels, boxes)."""

from __future__ import annotations

import torch

__all__ = ["restricted_pseudo_labels"]


def restricted_pseudo_labels(
    logits: torch.Tensor, image_labels: torch.Tensor | None = None, box_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """
    The class of highest score per pixel among the classes the weak labels allow (Self-Taught / Mean-Taught of
    Reiß et al., CVPR 2021: classes absent from the image-level label are removed, pixels outside every box of a
    class cannot take it). The background (class 0) is always allowed, so a pixel whose predicted class is
    forbidden falls to the best allowed class, typically the background.

    Args:
        logits: ``(B, K, *spatial)`` scores of the standard head (logits or probabilities; only their order per pixel
            matters).
        image_labels: optional ``(B, K)`` in {0, 1}: which classes occur in each image; a row of ones restricts
            nothing (e.g. an image without an image-level label).
        box_mask: optional ``(B, K, *spatial)`` in {0, 1}: 1 where class ``k`` may occur (inside a box of class
            ``k``); channel 0 is not read; a channel of ones restricts nothing.

    Returns:
        ``(B, 1, *spatial)`` int64 class indices.

    Raises:
        ValueError: when a weak label does not match the logits' shape.
    """
    batch, classes = logits.shape[:2]
    allowed = torch.ones_like(logits, dtype=torch.bool)
    if image_labels is not None:
        if tuple(image_labels.shape) != (batch, classes):
            raise ValueError(
                f"image_labels must be (B, K) = {(batch, classes)} for logits of shape {tuple(logits.shape)}, got "
                f"shape {tuple(image_labels.shape)}."
            )
        allowed &= (image_labels.to(logits.device) > 0).view(batch, classes, *([1] * (logits.ndim - 2)))
    if box_mask is not None:
        if tuple(box_mask.shape) != tuple(logits.shape):
            raise ValueError(
                f"box_mask must be (B, K, *spatial) = {tuple(logits.shape)}, got shape {tuple(box_mask.shape)}."
            )
        allowed &= box_mask.to(logits.device) > 0
    allowed[:, 0] = True
    scores = logits.float().masked_fill(~allowed, float("-inf"))
    return scores.argmax(1, keepdim=True)
