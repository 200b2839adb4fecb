"""The per-image metrics of the MaskSup evaluation: foreground IoU, Dice and HD95, as MONAI metric handlers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.handlers import HausdorffDistance, IgniteMetricHandler, from_engine
from monai.metrics import DiceMetric

from monai_masksup.handlers.foreground_iou import ForegroundIoU

__all__ = ["SEGMENTATION_METRICS", "foreground_pair", "segmentation_metrics"]

#: short names of the metrics of :func:`segmentation_metrics`, the columns of the reports.
SEGMENTATION_METRICS: tuple[str, ...] = ("iou", "dice", "hd95")


def foreground_pair(pred_key: str = "pred", label_key: str = "label") -> Callable[[Any], tuple[Any, Any]]:
    """
    An ``output_transform`` giving ``(y_pred, y)`` of the foreground only: ``monai.handlers.from_engine`` of the
    two keys, with a two-channel (background, foreground) map reduced to its foreground channel, so that Dice
    and HD95 of a one-hot binary output are those of the foreground, as the foreground IoU is.

    Args:
        pred_key: key of the binarised prediction in ``engine.state.output``.
        label_key: key of the binary label.

    Returns:
        a callable ``output -> (y_pred, y)``, decollated lists of ``(1, *spatial)`` tensors (or ``(B, 1, ...)``
        batches for a collated output).
    """
    take = from_engine([pred_key, label_key])

    def _foreground(items: Any) -> list:
        return [item[-1:] if item.shape[0] == 2 else item for item in items]

    def _transform(output: Any) -> tuple[Any, Any]:
        y_pred, y = take(output)
        if isinstance(y_pred, torch.Tensor):  # a collated output: (B, C, ...) batches
            return tuple(t[:, -1:] if t.shape[1] == 2 else t for t in (y_pred, y))  # type: ignore[return-value]
        return _foreground(y_pred), _foreground(y)

    return _transform


def segmentation_metrics(
    prefix: str = "", pred_key: str = "pred", label_key: str = "label", empty_score: float = 1.0
) -> dict[str, IgniteMetricHandler]:
    """
    New metric handlers of the MaskSup evaluation, each storing its per-image values (``save_details=True``):

    - ``<prefix>iou``: :class:`~monai_masksup.handlers.ForegroundIoU`, the paper's metric;
    - ``<prefix>dice``: MONAI's ``DiceMetric`` with ``ignore_empty=False`` (1 when label and prediction are
      both empty, 0 when only one is), in an ``IgniteMetricHandler`` because ``monai.handlers.MeanDice``
      does not expose ``ignore_empty`` and would give NaN on an empty label;
    - ``<prefix>hd95``: ``monai.handlers.HausdorffDistance(percentile=95)`` in pixels; NaN (left out of the
      mean, with MONAI's warning) when the label or the prediction is empty.

    Of a two-channel (background, foreground) output only the foreground is scored (:func:`foreground_pair`).
    Predictions must be binarised by the evaluator's post-processing (``Activationsd(sigmoid=True)`` +
    ``AsDiscreted(threshold=0.5)``). The handlers are new on every call, since one handler serves one engine.

    Args:
        prefix: prefix of the metric names, e.g. ``"test_"``.
        pred_key: key of the binarised prediction in ``engine.state.output``.
        label_key: key of the binary label in ``engine.state.output``.
        empty_score: the IoU of an image with empty label and prediction (see ``ForegroundIoU``).

    Returns:
        metric name -> handler, in the order IoU, Dice, HD95.
    """
    output_transform = foreground_pair(pred_key, label_key)
    return {
        f"{prefix}iou": ForegroundIoU(empty_score=empty_score, output_transform=output_transform),
        f"{prefix}dice": IgniteMetricHandler(
            metric_fn=DiceMetric(include_background=True, ignore_empty=False), output_transform=output_transform
        ),
        f"{prefix}hd95": HausdorffDistance(include_background=True, percentile=95, output_transform=output_transform),
    }
