"""The per-image segmentation report's own parts: one record per image and the summary of the records.

The per-image values come from MONAI metric handlers (``save_details=True``, ``engine.state.metric_details``)
and MONAI's ``MetricsSaver`` writes them as CSV files; what MONAI lacks is one record per image holding every
metric, with undefined values (an HD95 on an empty mask) as ``None``, and a summary that says how many values
each mean left out. :class:`monai_masksup.handlers.SegmentationReportSaver` writes both to ``metrics.json``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from monai.data import MetaTensor
from monai.utils import convert_to_tensor

__all__ = ["REPORT_METRICS", "image_meta", "image_name", "json_safe", "per_image_records", "summarise_per_image"]

#: the metric columns of the MaskSup report.
REPORT_METRICS = ("iou", "dice", "hd95")


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def image_name(filename: Any, index: int) -> str:
    """Row id of an image: the base name of its ``filename_or_obj``, or ``case_<index>`` when it has none."""
    if filename is None or str(filename) in ("", "None"):
        return f"case_{index:04d}"
    return os.path.basename(str(filename)) or str(filename)


def image_meta(image_key: str = "image") -> Callable[[Any], Any]:
    """
    A ``batch_transform`` for ``MetricsSaver``: the meta data of ``batch[image_key]`` (a MetaTensor, or the
    older ``<image_key>_meta_dict``), for a decollated batch (list of dicts) as well as a collated one.

    Args:
        image_key: key of the image in the batch.

    Returns:
        a callable ``batch -> list of meta dicts`` (or one batched meta dict, which ``MetricsSaver`` decollates).
    """

    def _meta(item: Mapping[str, Any]) -> Any:
        image = item.get(image_key)
        if isinstance(image, MetaTensor):
            return image.meta
        return item.get(f"{image_key}_meta_dict", {})

    def _transform(batch: Any) -> Any:
        if isinstance(batch, Mapping):
            return _meta(batch)
        return [_meta(item) if isinstance(item, Mapping) else {} for item in batch]

    return _transform


def per_image_records(
    details: Mapping[str, Any], names: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """
    One record per image from per-image metric values.

    Args:
        details: column name -> per-image values ``(N, C)`` (``engine.state.metric_details`` of one metric);
            the channels are averaged, leaving out NaN, as in the ``mean`` column of MONAI's ``MetricsSaver``.
        names: one row id per image; ``case_<index>`` when ``None``.

    Returns:
        ``[{"image": name, <column>: float | None, ...}, ...]``, undefined (NaN or infinite) values as ``None``.

    Raises:
        ValueError: when the columns or the names differ in length.
    """
    columns = {}
    for column, values in details.items():
        values = convert_to_tensor(values, track_meta=False).detach().float().cpu()
        values = values.reshape(values.shape[0], -1) if values.ndim > 0 else values.reshape(1, 1)
        columns[column] = torch.nanmean(values, dim=1).tolist()
    counts = {column: len(values) for column, values in columns.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(f"per_image_records: the metrics hold different numbers of images: {counts}.")
    count = next(iter(counts.values()), 0)
    if names is None:
        names = [image_name(None, index) for index in range(count)]
    if len(names) != count:
        raise ValueError(f"per_image_records: {len(names)} image names for {count} per-image values.")
    return [
        {"image": str(names[index]), **{c: _finite_or_none(float(v[index])) for c, v in columns.items()}}
        for index in range(count)
    ]


def summarise_per_image(
    records: Sequence[Mapping[str, Any]], metrics: Sequence[str] = REPORT_METRICS
) -> dict[str, Any]:
    """Means over images, leaving out values that are undefined (``None`` or not finite).

    Args:
        records: per-image records such as those of :func:`per_image_records`.
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


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats replaced by ``None`` (nested dicts and lists included), for strict JSON."""
    if isinstance(value, Mapping):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
