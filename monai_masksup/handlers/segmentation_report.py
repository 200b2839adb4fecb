"""Per-image segmentation report of an evaluation: MONAI's ``MetricsSaver`` CSV files plus one ``metrics.json``."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monai.data import decollate_batch
from monai.handlers import MetricsSaver
from monai.utils import IgniteInfo, min_version, optional_import, string_list_all_gather

from monai_masksup.evaluation.segmentation_report import (
    image_meta,
    image_name,
    json_safe,
    per_image_records,
    summarise_per_image,
)

idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")
if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["SegmentationReportSaver"]


class SegmentationReportSaver(MetricsSaver):
    """
    MONAI's ``MetricsSaver`` (``metrics.csv`` with the epoch metrics, ``<metric>_raw.csv`` per image and metric,
    file names gathered across ranks in distributed evaluation) plus what it lacks: ``json_name``, one JSON file
    with a record per image holding every metric under a short column name (the image's base name, undefined
    values such as the HD95 of an empty mask as ``null``) and their summary (mean, std, how many values each
    mean used and left out; :func:`monai_masksup.evaluation.summarise_per_image`), also kept in ``self.summary``.

    The per-image values are those of metric handlers attached with ``save_details=True`` (gathered across ranks
    by MONAI); attach the metrics before this handler. The image names of the JSON report are collected by this
    handler's own iteration handler (``MetricsSaver`` keeps its file names private) from the same meta data, and
    gathered across ranks in the same order as the metric values.

    Args:
        save_dir: folder of the files.
        metric_details: report column -> metric name in ``engine.state.metric_details``, e.g.
            ``{"iou": "test_iou", "dice": "test_dice", "hd95": "test_hd95"}``.
        json_name: file name of the JSON report.
        image_key: batch key whose meta data ``filename_or_obj`` names the images (when ``batch_transform``
            is ``None``).
        batch_transform: ``MetricsSaver``'s extraction of the meta data from ``engine.state.batch``; ``None``
            uses the meta data (:func:`monai_masksup.evaluation.image_meta`) of ``image_key``.
        metrics: ``MetricsSaver``'s epoch metrics to write to ``metrics.csv`` (``"*"``: all).
        summary_ops: ``MetricsSaver``'s summary operations (``<metric>_summary.csv``); ``None`` for none.
        save_rank: the rank that writes the files.
        delimiter: CSV delimiter.

    Raises:
        ValueError: when ``metric_details`` is empty.
    """

    def __init__(
        self,
        save_dir: str,
        metric_details: Mapping[str, str],
        json_name: str = "metrics.json",
        image_key: str = "image",
        batch_transform: Callable | None = None,
        metrics: str | Sequence[str] | None = "*",
        summary_ops: str | Sequence[str] | None = None,
        save_rank: int = 0,
        delimiter: str = ",",
    ) -> None:
        if not metric_details:
            raise ValueError("SegmentationReportSaver: `metric_details` must map at least one column to a metric.")
        self.columns = dict(metric_details)
        super().__init__(
            save_dir=save_dir,
            metrics=metrics,
            metric_details=list(self.columns.values()),
            batch_transform=image_meta(image_key) if batch_transform is None else batch_transform,
            summary_ops=summary_ops,
            save_rank=save_rank,
            delimiter=delimiter,
        )
        self.json_name = json_name
        self.summary: dict[str, Any] = {}
        self.image_names: list[str] = []

    def attach(self, engine: Engine) -> None:
        """Attach ``MetricsSaver``'s handlers and the collection of the image names to ``engine``."""
        super().attach(engine)
        engine.add_event_handler(Events.EPOCH_STARTED, self._clear_image_names)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect_image_names)

    def _clear_image_names(self, _engine: Engine) -> None:
        self.image_names = []

    def _collect_image_names(self, engine: Engine) -> None:
        meta_data = self.batch_transform(engine.state.batch)
        if isinstance(meta_data, dict):
            meta_data = decollate_batch(meta_data)
        # stringified as MetricsSaver does for its CSV rows, so that both files name the images alike
        self.image_names.extend(f"{meta.get('filename_or_obj')}" for meta in meta_data)

    def __call__(self, engine: Engine) -> None:
        """Write MONAI's CSV files, then the JSON report; see the class docstring.

        Raises:
            ValueError: when a metric of ``metric_details`` stored no per-image values.
        """
        super().__call__(engine)
        # a collective operation: every rank takes part, only `save_rank` writes
        filenames = string_list_all_gather(self.image_names) if idist.get_world_size() > 1 else list(self.image_names)
        if idist.get_rank() != self.save_rank:
            return
        details = getattr(engine.state, "metric_details", {})
        missing = [name for name in self.columns.values() if name not in details]
        if missing:
            raise ValueError(
                f"SegmentationReportSaver: no per-image values of {missing} in engine.state.metric_details "
                f"(it has {sorted(details)}); attach these metrics with save_details=True before this handler."
            )
        values = {column: details[name] for column, name in self.columns.items()}
        names = [image_name(filename, index) for index, filename in enumerate(filenames)]
        records = per_image_records(values, names or None)
        self.summary = summarise_per_image(records, list(self.columns))
        out = Path(self.save_dir)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / self.json_name, "w", encoding="utf-8") as f:
            json.dump(json_safe({"summary": self.summary, "per_image": records}), f, indent=2, allow_nan=False)
