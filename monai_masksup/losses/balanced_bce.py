"""Class-balanced binary cross-entropy on logits (HED-style weighting), MaskContrast's saliency loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.modules.loss import _Loss

from .logit_checks import as_plain_tensor

__all__ = ["BalancedBCEWithLogitsLoss"]


class BalancedBCEWithLogitsLoss(_Loss):
    """
    Binary cross-entropy on logits whose positive and negative pixels are weighted by the other class's share
    of the batch, as in HED (Xie and Tu, ICCV 2015) and the saliency head of MaskContrast (Van Gansbeke et al.,
    ICCV 2021):

        ``w = N_neg / N``,  ``L = (w · Σ_pos ℓ + (1 − w) · Σ_neg ℓ) / N``

    with ``ℓ`` the per-pixel BCE-with-logits and ``N`` every element of the batch. MONAI's and torch's
    ``pos_weight`` is a fixed constant; here the weight is recomputed from every batch, which is why this loss
    exists.

    A batch without positives gives ``w = 1``: only the (absent) positive term would be weighted, so the loss
    is 0 there, as in the reference.
    """

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            input: logits of any shape, e.g. ``(B, 1, *spatial)`` or ``(B, *spatial)``.
            target: binary target {0, 1} of the same number of elements (a missing channel dimension is added).

        Returns:
            the balanced loss, a scalar tensor.

        Raises:
            ValueError: when the two do not have the same number of elements.
        """
        logits = as_plain_tensor(input, "input").float()
        target = as_plain_tensor(target, "target")
        if target.numel() != logits.numel():
            raise ValueError(
                f"BalancedBCEWithLogitsLoss: target shape {tuple(target.shape)} does not match the logits' "
                f"{tuple(logits.shape)}."
            )
        target = target.reshape(logits.shape).to(logits.dtype)
        per_pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        w = (1.0 - target).sum() / target.numel()
        loss_pos = (target * per_pixel).sum()
        loss_neg = ((1.0 - target) * per_pixel).sum()
        return (w * loss_pos + (1.0 - w) * loss_neg) / target.numel()
