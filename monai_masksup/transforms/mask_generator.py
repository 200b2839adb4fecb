"""The mask protocol: what the masking transforms and the engines call to draw a batch of masks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch

__all__ = ["MaskGenerator", "check_mask_generator"]


@runtime_checkable
class MaskGenerator(Protocol):
    """
    Anything that draws a batch of binary masks: :py:class:`HoleMaskGenerator` (MaskSup's irregular holes),
    :py:class:`HoleMaskFolder` (masks from image files) and :py:class:`BoxMaskGenerator` (CutMix / Cutout boxes)
    meet it, so each of them works in :py:class:`RandHoleMask` / :py:class:`RandHoleMaskd` and as the
    ``mask_generator`` of :py:class:`monai_masksup.engines.MaskSupTrainer`.

    A generator that has batched draws cheaper than ``batch_size`` single draws gains from ``draw_batch`` in
    the transforms; the protocol asks only that ``batch_size`` masks come back.

    ``isinstance(obj, MaskGenerator)`` checks only that ``obj`` is callable (a runtime-checkable protocol sees
    names, not signatures); the call below is the contract.
    """

    def __call__(
        self,
        batch_size: int,
        spatial_size: Sequence[int],
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """
        Draw ``batch_size`` masks.

        Args:
            batch_size: number of masks B, at least 1.
            spatial_size: (H, W) or (H, W, D) (a generator may support only one of them and says so in a
                ValueError).
            device: device of the returned masks (``None``: CPU).
            generator: source of every random number when given, so that one seed gives the same masks; when
                ``None`` the generator uses its own (or torch's global) random state.

        Returns:
            float32 tensor ``(B, 1, *spatial_size)`` on ``device``, values in {0, 1}, 1 = masked.
        """
        ...


def check_mask_generator(mask_generator: object, name: str = "mask_generator") -> MaskGenerator:
    """
    Return ``mask_generator`` if it can be called as a :py:class:`MaskGenerator`.

    Args:
        mask_generator: the object to check.
        name: what to call it in the message (the argument and the class that takes it).

    Raises:
        TypeError: when it is not callable.
    """
    if not isinstance(mask_generator, MaskGenerator):
        raise TypeError(
            f"{name} must be a MaskGenerator, callable as (batch_size, spatial_size, device=None, generator=None) "
            f"-> (B, 1, *spatial) masks, got {type(mask_generator).__name__}."
        )
    return mask_generator
