"""CutMix mixing: two tensors combined by a box mask, the inside of the box taken from the second."""

from __future__ import annotations

import torch

__all__ = ["mix_with_mask"]


def mix_with_mask(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """
    Mix two batches with a mask as CutMix does (French et al., "Semi-supervised semantic segmentation needs
    strong, varied perturbations", BMVC 2020): ``a * (1 - mask) + b * mask``.

    The CutMix mean teacher mixes three things with the same mask: the student's input images, the teacher's
    logits on the two unmixed images (the consistency target, mixed **before** the softmax as the reference
    does) and the two images' validity maps (the loss mask). This is the one formula for all three; torch's
    ``lerp`` is not used because ``a + mask * (b - a)`` is not exactly ``b`` where ``mask == 1``.

    Args:
        a: the first batch ``(B, C, *spatial)``, kept where ``mask == 0``.
        b: the second batch, same shape, taken where ``mask == 1``.
        mask: ``(B, 1, *spatial)`` (or any shape broadcasting to ``a``), 1 inside the box. Soft masks in
            [0, 1] blend linearly.

    Returns:
        the mixed batch, the shape of ``a``.

    Raises:
        ValueError: when ``a`` and ``b`` differ in shape or ``mask`` does not broadcast to them.
    """
    if a.shape != b.shape:
        raise ValueError(f"mix_with_mask: a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}.")
    try:
        broadcast = torch.broadcast_shapes(mask.shape, a.shape)
    except RuntimeError:
        broadcast = None
    if broadcast != a.shape:
        raise ValueError(
            f"mix_with_mask: a mask of shape {tuple(mask.shape)} does not broadcast to the batches' shape "
            f"{tuple(a.shape)}; expected (B, 1, *spatial)."
        )
    mask = mask.to(torch.promote_types(a.dtype, mask.dtype))
    return a * (1 - mask) + b * mask
