"""The one masking operation of the plugin: fill the masked pixels of an image or a batch."""

from __future__ import annotations

import numpy as np
import torch
from monai.config.type_definitions import NdarrayOrTensor

from .hole_mask import apply_hole_mask

__all__ = ["apply_mask"]


def apply_mask(
    image: NdarrayOrTensor, mask: NdarrayOrTensor, fill_value: float = 0.0, batched: bool = False
) -> NdarrayOrTensor:
    """
    Replace the masked pixels (``mask == 1``) of every channel of ``image`` by ``fill_value``.

    Used by the masking transforms (one sample), the engines (a batch on the device) and the robustness
    evaluation, so that all three mask in the same way.

    Args:
        image: one channel-first sample ``(C, *spatial)`` or a batch ``(B, C, *spatial)``.
        mask: ``(1, *spatial)`` for a sample or ``(B, 1, *spatial)`` for a batch, 1 = masked.
        fill_value: value written into the masked pixels.
        batched: ``image`` is a batch (a ``(B, C, H, W)`` batch and a ``(C, H, W, D)`` sample have the same
            number of dimensions, so this cannot be inferred).

    Returns:
        the masked image, a new array of the type of ``image`` (a MetaTensor keeps its meta data).

    Raises:
        ValueError: when the shapes do not pair as above, or ``fill_value`` does not fit an integer image.
    """
    mask_t = torch.as_tensor(mask)
    if not batched:
        return apply_hole_mask(image, mask_t, fill_value)[0]
    if mask_t.ndim != image.ndim or mask_t.shape[0] != image.shape[0] or mask_t.shape[1] != 1:
        raise ValueError(
            f"apply_mask: a mask of shape {tuple(mask_t.shape)} does not fit an image of shape {tuple(image.shape)}; "
            "expected (1, *spatial) for a (C, *spatial) sample or (B, 1, *spatial) for a (B, C, *spatial) batch."
        )
    # a batch is masked as one sample whose first spatial axis is the batch: (C, B, *spatial) with (1, B, *spatial)
    swap = np.swapaxes if isinstance(image, np.ndarray) else torch.swapaxes
    masked = apply_hole_mask(swap(image, 0, 1), mask_t.swapaxes(0, 1), fill_value)[0]
    return swap(masked, 0, 1)
