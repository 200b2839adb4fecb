"""Multiple-instance learning loss on image-level labels: average-pooled logits against the classes present."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.nn.modules.loss import _Loss

from .logit_checks import as_plain_tensor

__all__ = ["MultipleInstanceLoss"]


class MultipleInstanceLoss(_Loss):
    """
    Image-level multiple-instance loss, the MIL baselines of "Every Annotation Counts" (Reiß et al., CVPR 2021,
    supplement): a segmentation network's logits are average-pooled over space into one score per class, and the
    scores are compared with the image-level labels (which classes occur in the image) by BCE-with-logits, mean over
    the classes and the batch.

    Given a list/tuple of deep-supervision levels, the loss is applied to every level and averaged over the levels
    (the deeply supervised MIL baseline); given one tensor, to that tensor (the MIL baseline on the standard head).

    Args:
        weights: optional non-negative weight per level, in input order; ``None`` weighs all levels 1.
    """

    def __init__(self, weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.weights = None if weights is None else [float(w) for w in weights]

    def forward(self, input: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            input: logits ``(B, K, *spatial)`` or a list/tuple of such levels (sizes may differ).
            target: image-level labels ``(B, K)`` in {0, 1} (background included as class 0).

        Returns:
            the scalar loss.

        Raises:
            ValueError: when the target is not ``(B, K)`` for the logits' batch and class count, holds values other
                than 0 and 1, or ``weights`` does not match the number of levels.
        """
        levels = list(input) if isinstance(input, (list, tuple)) else [input]
        if not levels:
            raise ValueError("MultipleInstanceLoss: input is an empty list/tuple of logits.")
        levels = [as_plain_tensor(z, f"input[{i}]").float() for i, z in enumerate(levels)]
        target = as_plain_tensor(target, "target").float()
        if target.shape != levels[0].shape[:2]:
            raise ValueError(
                f"MultipleInstanceLoss: target must be image-level labels (B, K) = {tuple(levels[0].shape[:2])}, got "
                f"shape {tuple(target.shape)}."
            )
        if bool(((target != 0) & (target != 1)).any()):
            raise ValueError("MultipleInstanceLoss: image-level labels must hold only 0 and 1.")
        weights = [1.0] * len(levels) if self.weights is None else self.weights
        if len(weights) != len(levels):
            raise ValueError(f"MultipleInstanceLoss: {len(weights)} weights for {len(levels)} levels.")
        terms = [w * F.binary_cross_entropy_with_logits(z.flatten(2).mean(2), target) for w, z in zip(weights, levels)]
        return torch.stack(terms).sum() / len(levels)
