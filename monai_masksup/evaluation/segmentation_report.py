"""Per-image segmentation report: foreground IoU, Dice and HD95 per test image, their means, JSON and CSV files.

The foreground IoU follows the MaskSup evaluation protocol (Zunair and Ben Hamza, "Masked Supervised
Learning for Semantic Segmentation", BMVC 2022): the sigmoid output is thresholded at 0.5 and the IoU of
the foreground is computed per image. Dice and the 95th-percentile Hausdorff distance (HD95) come from
MONAI (``monai.metrics.compute_dice``, ``monai.metrics.compute_hausdorff_distance``).
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.data import MetaTensor
from monai.metrics import compute_dice, compute_hausdorff_distance
from monai.utils import min_version, optional_import

from monai_masksup.evaluation.foreground_prediction import binarise_foreground, foreground_channel
from monai_masksup.metrics import compute_foreground_iou

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

REPORT_METRICS = ("iou", "dice", "hd95")


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def score_images(
    y_pred: torch.Tensor,
    y: torch.Tensor,
    names: Sequence[str] | None = None,
    spacing: float | Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """Foreground IoU, Dice and HD95 of each image of a batch.

    Conventions for empty masks: Dice is 1 when label and prediction are both empty and 0 when only
    one is (``ignore_empty=False``); HD95 is undefined when either is empty and is recorded as
    ``None``; the IoU is whatever ``compute_foreground_iou`` defines, ``None`` when not finite.

    Args:
        y_pred: binarised prediction ``(B, 1, *spatial)`` in {0, 1}, or one-hot ``(B, 2, *spatial)``.
        y: label ``(B, 1, *spatial)`` in {0, 1}, or one-hot ``(B, 2, *spatial)``.
        names: one row id per image (the image file name); defaults to ``"case_<index>"``.
        spacing: pixel spacing for HD95 (MONAI ``spacing``); ``None`` measures in pixels.

    Returns:
        one record per image: ``{"image": str, "iou": float | None, "dice": float, "hd95": float | None}``.

    Raises:
        ValueError: when shapes differ or ``names`` has the wrong length.
    """
    y_pred = foreground_channel(torch.as_tensor(y_pred), "y_pred")
    y = foreground_channel(torch.as_tensor(y), "y")
    if y_pred.shape != y.shape:
        raise ValueError(f"y_pred and y must have the same shape, got {tuple(y_pred.shape)} and {tuple(y.shape)}.")
    batch = y_pred.shape[0]
    if names is None:
        names = [f"case_{index:04d}" for index in range(batch)]
    if len(names) != batch:
        raise ValueError(f"names: expected {batch} names (one per image), got {len(names)}.")
    # plain tensors: MetaTensor meta must not leak into the metric maths
    y_pred = y_pred.as_tensor() if isinstance(y_pred, MetaTensor) else y_pred
    y = y.as_tensor() if isinstance(y, MetaTensor) else y

    iou = torch.as_tensor(compute_foreground_iou(y_pred, y)).reshape(batch, -1)[:, 0]
    dice = compute_dice(y_pred, y, include_background=True, ignore_empty=False).reshape(batch)
    with warnings.catch_warnings():
        # empty masks are expected in a test set; their HD95 is recorded as None below
        warnings.filterwarnings("ignore", message=".*may result in nan/inf distance.*")
        # raised inside MONAI's own get_mask_edges call, nothing a caller can change
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*")
        hd95 = compute_hausdorff_distance(
            y_pred, y, include_background=True, percentile=95, spacing=spacing
        ).reshape(batch)
    return [
        {
            "image": str(names[index]),
            "iou": _finite_or_none(float(iou[index])),
            "dice": _finite_or_none(float(dice[index])),
            "hd95": _finite_or_none(float(hd95[index])),
        }
        for index in range(batch)
    ]


def summarise_per_image(
    records: Sequence[Mapping[str, Any]], metrics: Sequence[str] = REPORT_METRICS
) -> dict[str, Any]:
    """Means over images, leaving out values that are undefined (``None`` or not finite).

    Args:
        records: per-image records such as those of :func:`score_images`.
        metrics: record keys to summarise.

    Returns:
        ``{"n_images": int}`` plus, per metric ``m``: ``m_mean`` and ``m_std`` (population std) over the
        defined values (``None`` when there is none), ``m_count`` (values used) and ``m_excluded``
        (values left out because undefined).
    """
    summary: dict[str, Any] = {"n_images": len(records)}
    for metric in metrics:
        values = [record.get(metric) for record in records]
        defined = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        if defined:
            mean = sum(defined) / len(defined)
            std = math.sqrt(sum((v - mean) ** 2 for v in defined) / len(defined))
        else:
            mean = std = None
        summary[f"{metric}_mean"] = mean
        summary[f"{metric}_std"] = std
        summary[f"{metric}_count"] = len(defined)
        summary[f"{metric}_excluded"] = len(values) - len(defined)
    return summary


def write_segmentation_report(
    records: Sequence[Mapping[str, Any]],
    output_dir: str | os.PathLike,
    json_name: str | None = "metrics.json",
    csv_name: str | None = "metrics.csv",
    metrics: Sequence[str] = REPORT_METRICS,
) -> dict[str, Any]:
    """Write the per-image records and their means to a JSON file and a CSV file.

    The JSON file holds ``{"summary": summarise_per_image(records), "per_image": records}`` with
    undefined values as ``null``. The CSV file has a header ``image,<metrics...>``, one row per image
    (undefined values empty) and a last row ``mean`` with the means.

    Args:
        records: per-image records (``"image"`` plus the metric keys).
        output_dir: folder of the files, created when missing.
        json_name: JSON file name, ``None`` to skip it.
        csv_name: CSV file name, ``None`` to skip it.
        metrics: record keys to write.

    Returns:
        the summary (as :func:`summarise_per_image`).
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise_per_image(records, metrics)
    if json_name:
        clean = [{key: json_safe(value) for key, value in record.items()} for record in records]
        with open(out / json_name, "w", encoding="utf-8") as f:
            json.dump({"summary": json_safe(summary), "per_image": clean}, f, indent=2, allow_nan=False)
    if csv_name:
        with open(out / csv_name, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["image", *metrics])
            for record in records:
                writer.writerow([record.get("image", ""), *(_csv_value(record.get(m)) for m in metrics)])
            writer.writerow(["mean", *(_csv_value(summary[f"{m}_mean"]) for m in metrics)])
    return summary


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats replaced by ``None`` (nested dicts and lists included), for strict JSON."""
    if isinstance(value, Mapping):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _csv_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


def _stack(items: torch.Tensor | Sequence[torch.Tensor], name: str) -> torch.Tensor:
    """A batch tensor from either a batch tensor or a decollated list of channel-first tensors."""
    if isinstance(items, torch.Tensor):
        return items
    if isinstance(items, Sequence) and len(items) > 0 and all(isinstance(i, torch.Tensor) for i in items):
        return torch.stack([i.as_tensor() if isinstance(i, MetaTensor) else i for i in items])
    raise ValueError(f"{name}: expected a batch tensor or a list of channel-first tensors, got {type(items).__name__}.")


def _filename_list(value: Any, count: int) -> list[str] | None:
    names = value.meta.get("filename_or_obj") if isinstance(value, MetaTensor) else None
    if names is None and isinstance(value, Mapping):
        names = value.get("filename_or_obj")
    if names is None:
        return None
    names = [names] if isinstance(names, (str, os.PathLike)) else list(names)
    return [str(n) for n in names] if len(names) == count else None


def image_names(batch: Any, count: int, image_key: str = "image", start: int = 0) -> list[str]:
    """Row ids of a batch: the base names of ``filename_or_obj`` in the image meta data.

    Looks at ``batch[image_key]`` (a MetaTensor), then ``batch[f"{image_key}_meta_dict"]``, then the
    items of a decollated list of dicts; falls back to ``"case_<start + index>"``.

    Args:
        batch: the loader batch (a dict) or a decollated list of dicts.
        count: number of images in the batch.
        image_key: key of the image in the batch.
        start: index of the first image in the test set, for the fallback names.

    Returns:
        ``count`` names.
    """
    names = None
    if isinstance(batch, Mapping):
        names = _filename_list(batch.get(image_key), count)
        if names is None:
            names = _filename_list(batch.get(f"{image_key}_meta_dict"), count)
    elif isinstance(batch, Sequence) and len(batch) == count and all(isinstance(b, Mapping) for b in batch):
        per_item = [_filename_list(b.get(image_key), 1) for b in batch]
        if all(p is not None for p in per_item):
            names = [p[0] for p in per_item]  # type: ignore[index]
    if names is None:
        return [f"case_{start + index:04d}" for index in range(count)]
    return [os.path.basename(n) or n for n in names]


class SegmentationReportHandler:
    """Ignite handler writing the per-image report (IoU, Dice, HD95) of an evaluation run.

    Attach it to a ``monai.engines.SupervisedEvaluator``. Each iteration scores the images of the
    batch; at ``EPOCH_COMPLETED`` it writes ``json_name`` and ``csv_name`` in ``output_dir`` (see
    :func:`write_segmentation_report`), stores the summary in ``self.summary`` and the means in
    ``engine.state.metrics`` as ``report_iou``, ``report_dice``, ``report_hd95``.

    Args:
        output_dir: folder of the report files.
        json_name: JSON file name, ``None`` to skip it.
        csv_name: CSV file name, ``None`` to skip it.
        output_transform: maps ``engine.state.output`` to ``(y_pred, y)``; each a batch tensor or a
            decollated list of ``(C, *spatial)`` tensors (``monai.handlers.from_engine(["pred", "label"])``).
        from_logits: ``False`` when ``y_pred`` is already binarised (``(B, 1, ...)`` or one-hot
            ``(B, 2, ...)``); ``True`` to binarise network logits here (sigmoid or softmax, ``> threshold``).
        threshold: foreground probability threshold when ``from_logits``.
        image_key: batch key whose meta data ``filename_or_obj`` names the rows.
        spacing: pixel spacing for HD95, ``None`` for pixels.
        metric_prefix: prefix of the means added to ``engine.state.metrics``; ``None`` to add none.
    """

    def __init__(
        self,
        output_dir: str,
        json_name: str | None = "metrics.json",
        csv_name: str | None = "metrics.csv",
        output_transform: Callable = lambda x: x,
        from_logits: bool = False,
        threshold: float = 0.5,
        image_key: str = "image",
        spacing: float | Sequence[float] | None = None,
        metric_prefix: str | None = "report_",
    ) -> None:
        self.output_dir = output_dir
        self.json_name = json_name
        self.csv_name = csv_name
        self.output_transform = output_transform
        self.from_logits = from_logits
        self.threshold = threshold
        self.image_key = image_key
        self.spacing = spacing
        self.metric_prefix = metric_prefix
        self.records: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}

    def attach(self, engine: Engine) -> None:
        """Register the handler on ``engine`` (EPOCH_STARTED, ITERATION_COMPLETED, EPOCH_COMPLETED)."""
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)

    def reset(self, engine: Engine | None = None) -> None:
        """Forget the records of a previous run."""
        self.records = []

    def iteration_completed(self, engine: Engine) -> None:
        """Score the images of the current batch."""
        y_pred, y = self.output_transform(engine.state.output)
        y_pred, y = _stack(y_pred, "y_pred"), _stack(y, "y")
        if self.from_logits:
            y_pred = binarise_foreground(y_pred, self.threshold)
        names = image_names(engine.state.batch, y_pred.shape[0], self.image_key, start=len(self.records))
        self.records.extend(score_images(y_pred.detach().cpu(), y.detach().cpu(), names, self.spacing))

    def epoch_completed(self, engine: Engine) -> None:
        """Write the report files and publish the means."""
        self.summary = write_segmentation_report(self.records, self.output_dir, self.json_name, self.csv_name)
        if self.metric_prefix is not None:
            for metric in REPORT_METRICS:
                mean = self.summary[f"{metric}_mean"]
                engine.state.metrics[f"{self.metric_prefix}{metric}"] = math.nan if mean is None else mean
