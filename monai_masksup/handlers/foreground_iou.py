"""Ignite handler of the per-image foreground IoU, for MONAI engines."""

from __future__ import annotations

from collections.abc import Callable

from monai.handlers.ignite_metric import IgniteMetricHandler
from monai.utils import MetricReduction

from monai_masksup.metrics.foreground_iou import ForegroundIoUMetric

__all__ = ["ForegroundIoU"]


class ForegroundIoU(IgniteMetricHandler):
    """
    Mean per-image foreground IoU over an epoch (the MaskSup paper's IoU), usable as a
    ``key_val_metric`` of ``SupervisedEvaluator`` like ``monai.handlers.MeanDice``. Predictions must
    be binarised first, e.g. with the post-transforms ``Activationsd(keys="pred", sigmoid=True)`` and
    ``AsDiscreted(keys="pred", threshold=0.5)``.

    Args:
        empty_score: score of an image with empty label and empty prediction; see
            :py:func:`monai_masksup.metrics.compute_foreground_iou`.
        reduction: MONAI reduction mode of the per-image scores, ``"mean"`` by default.
        output_transform: extracts ``(y_pred, y)`` from ``engine.state.output``, typically
            ``monai.handlers.from_engine(["pred", "label"])``.
        save_details: whether to store the per-image scores in
            ``engine.state.metric_details[<metric name>]``.
    """

    def __init__(
        self,
        empty_score: float = 1.0,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        metric_fn = ForegroundIoUMetric(empty_score=empty_score, reduction=reduction)
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)
