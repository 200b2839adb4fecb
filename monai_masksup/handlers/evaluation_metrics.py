"""Metric handlers of a one-off evaluation, attached to an evaluator under their own names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from monai.utils import IgniteInfo, min_version, optional_import

if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["EvaluationMetrics"]


class EvaluationMetrics:
    """
    Attach metric handlers (``monai.handlers.MeanDice``, :class:`~monai_masksup.handlers.ForegroundIoU`, any
    ignite ``Metric``) to an evaluator under their names, as ``key_val_metric`` + ``additional_metrics`` of
    ``SupervisedEvaluator`` would, but without a key metric.

    A ``SupervisedEvaluator`` attaches its additional metrics only together with a key metric, and then tracks
    the "best" key metric and logs "Got new best metric" for it: right for model selection during training,
    misleading for a test-set evaluation that runs once. List this handler before the handlers that read
    ``engine.state.metrics`` or ``engine.state.metric_details`` (``StatsHandler``, ``MetricsSaver``), so that
    the metrics are computed first at the end of the epoch.

    Args:
        metrics: metric name -> metric handler; the names appear in ``engine.state.metrics`` (and, for MONAI
            handlers with ``save_details=True``, in ``engine.state.metric_details``).

    Raises:
        ValueError: when ``metrics`` is empty or a value has no ``attach(engine, name)``.
    """

    def __init__(self, metrics: Mapping[str, Any]) -> None:
        if not metrics:
            raise ValueError("EvaluationMetrics: `metrics` must name at least one metric handler.")
        for name, metric in metrics.items():
            if not callable(getattr(metric, "attach", None)):
                raise ValueError(
                    f"EvaluationMetrics: metrics[{name!r}] is a {type(metric).__name__}, not a metric handler "
                    "with attach(engine, name)."
                )
        self.metrics = dict(metrics)

    def attach(self, engine: Engine) -> None:
        """Attach every metric to ``engine`` under its name."""
        for name, metric in self.metrics.items():
            metric.attach(engine, name)
