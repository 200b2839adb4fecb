"""Per-image foreground IoU, the evaluation metric of the MaskSup paper, as an extension of MONAI's ``MeanIoU``."""

from __future__ import annotations

import math

import torch
from monai.metrics import MeanIoU
from monai.metrics.meaniou import compute_iou
from monai.utils import MetricReduction

__all__ = ["ForegroundIoUMetric", "compute_foreground_iou"]


def _foreground_channel(x: torch.Tensor, name: str) -> torch.Tensor:
    """Return the ``(B, 1, *spatial)`` foreground map of a binary map or a two-channel one-hot map."""
    if x.ndim < 3:
        raise ValueError(f"{name} must be (B, 1, *spatial) or one-hot (B, 2, *spatial), got shape {tuple(x.shape)}.")
    if x.shape[1] == 2:
        x = x[:, 1:2]
    elif x.shape[1] != 1:
        raise ValueError(
            f"{name} must have 1 channel (foreground) or 2 (one-hot background/foreground), got {x.shape[1]} "
            f"channels (shape {tuple(x.shape)}); for multi-class use monai.metrics.MeanIoU or DiceMetric."
        )
    if bool(((x != 0) & (x != 1)).any()):
        raise ValueError(
            f"{name} must be binarised (values 0 and 1), got values in [{float(x.min())}, {float(x.max())}]; "
            "post-process predictions with Activations(sigmoid=True) + AsDiscrete(threshold=0.5) "
            "and scale labels to {0, 1}."
        )
    return x.float()


def compute_foreground_iou(y_pred: torch.Tensor, y: torch.Tensor, empty_score: float = 1.0) -> torch.Tensor:
    """
    Foreground intersection over union of each image, as reported in "Masked Supervised Learning for
    Semantic Segmentation" (Zunair and Hamza, BMVC 2022): ``|P & G| / |P | G|`` of the binarised
    prediction ``P`` (``sigmoid > 0.5``) and the label ``G``, one value per image.

    The IoU itself is MONAI's ``compute_iou`` on the foreground channel; this function adds what MONAI lacks:

    - two-channel input: of a one-hot ``(B, 2, ...)`` map only the foreground channel is scored, and a
      1-channel prediction may be scored against a 2-channel label (or the reverse);
    - the empty-mask convention: an image whose label **and** prediction are both empty (union 0) scores
      ``empty_score``, 1.0 by default (a correct "nothing here" answer is perfect); an empty label with a
      non-empty prediction (or the reverse) scores 0. MONAI's ``ignore_empty=True`` would give NaN for
      every empty label, and ``ignore_empty=False`` always 1 for an empty union. The reference code scores
      images with scikit-learn's ``jaccard_score``, which returns 0 for an empty union (``zero_division``
      default); ``empty_score=0.0`` reproduces it, and ``empty_score=float("nan")`` leaves those images
      out of the mean. See ``docs/deviations.md``.

    Args:
        y_pred: binarised prediction ``(B, 1, *spatial)``, or one-hot ``(B, 2, *spatial)`` (channel 1
            is used). 2D or 3D.
        y: binarised label in the same form (either form, independent of ``y_pred``'s).
        empty_score: the score of an image whose label and prediction are both empty.

    Returns:
        float32 tensor ``(B, 1)`` of per-image IoU.

    Raises:
        ValueError: when a tensor has neither 1 nor 2 channels, is not binarised, or the batch or
            spatial sizes of ``y_pred`` and ``y`` differ.
    """
    y_pred = _foreground_channel(y_pred, "y_pred")
    y = _foreground_channel(y, "y")
    if y_pred.shape != y.shape:
        raise ValueError(
            f"y_pred and y must have the same batch and spatial size, got {tuple(y_pred.shape)} and {tuple(y.shape)} "
            "(after taking the foreground channel)."
        )
    iou = compute_iou(y_pred, y, include_background=True, ignore_empty=False)
    if empty_score == 1.0:
        return iou
    reduce_dims = list(range(2, y.ndim))
    empty_union = (y_pred + y).sum(reduce_dims) == 0
    return torch.where(empty_union, torch.full_like(iou, empty_score), iou)


class ForegroundIoUMetric(MeanIoU):
    """
    Per-image foreground IoU (binary segmentation) accumulated over iterations: MONAI's ``MeanIoU`` with
    two-channel input and the paper's empty-mask convention, see :py:func:`compute_foreground_iou`. With
    the default ``reduction="mean"`` the aggregate is the mean over images, the paper's number; buffering,
    distributed gathering and reduction are ``MeanIoU``'s.

    For multi-class segmentation use ``MeanIoU`` or ``DiceMetric`` directly: on a two-channel one-hot
    input, ``MeanIoU(include_background=False)`` gives the same per-image values on images with a
    non-empty label.

    Args:
        empty_score: score of an image with empty label and empty prediction (1.0; 0.0 reproduces
            the reference's scikit-learn ``jaccard_score``; NaN excludes such images).
        reduction: MONAI reduction mode applied to the not-NaN values: {``"none"``, ``"mean"``,
            ``"sum"``, ``"mean_batch"``, ``"sum_batch"``, ``"mean_channel"``, ``"sum_channel"``}.
        get_not_nans: whether ``aggregate()`` also returns the count of not-NaN values.

    Raises:
        ValueError: when ``empty_score`` is neither in [0, 1] nor NaN.
    """

    def __init__(
        self,
        empty_score: float = 1.0,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__(include_background=True, reduction=reduction, get_not_nans=get_not_nans, ignore_empty=False)
        if not (math.isnan(empty_score) or 0.0 <= empty_score <= 1.0):
            raise ValueError(f"empty_score must be in [0, 1] or NaN, got {empty_score}.")
        self.empty_score = float(empty_score)

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """
        Args:
            y_pred: binarised prediction ``(B, 1, *spatial)`` or one-hot ``(B, 2, *spatial)``.
            y: binarised label, same forms.

        Returns:
            per-image IoU ``(B, 1)``.
        """
        return compute_foreground_iou(y_pred, y, empty_score=self.empty_score)
