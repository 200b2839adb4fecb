"""The robustness table: one row of mean scores per hole-coverage bin, written as JSON, CSV and a line chart."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_masksup.evaluation.line_chart import draw_line_chart
from monai_masksup.evaluation.segmentation_report import REPORT_METRICS, json_safe, summarise_per_image

__all__ = [
    "CLEAN",
    "DEFAULT_COVERAGE_BINS",
    "ROW_COLUMNS",
    "check_bins",
    "coverage_bin_name",
    "robustness_row",
    "write_robustness_table",
]

DEFAULT_COVERAGE_BINS = ((0.0, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6))
#: name of the row of the unmasked inputs.
CLEAN = "clean"
ROW_COLUMNS = (
    "bin",
    "coverage_lo",
    "coverage_hi",
    "coverage_measured",
    "n_images",
    "iou_mean",
    "iou_std",
    "dice_mean",
    "dice_std",
    "hd95_mean",
    "hd95_std",
    "hd95_excluded",
)


def coverage_bin_name(bin_range: Sequence[float]) -> str:
    """Row name of a coverage bin, e.g. ``(0.1, 0.2) -> "10-20%"``."""
    lo, hi = bin_range
    return f"{100 * lo:g}-{100 * hi:g}%"


def check_bins(bins: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    """
    The coverage bins as ``(lo, hi)`` float pairs.

    Raises:
        ValueError: when there is no bin or a bin is not ``0 <= lo < hi <= 1``.
    """
    checked = []
    for item in bins:
        if len(item) != 2 or not 0.0 <= float(item[0]) < float(item[1]) <= 1.0:
            raise ValueError(f"bins: each bin must be (lo, hi) with 0 <= lo < hi <= 1, got {tuple(item)}.")
        checked.append((float(item[0]), float(item[1])))
    if not checked:
        raise ValueError("bins: at least one coverage bin is needed.")
    return checked


def robustness_row(
    name: str, bin_range: Sequence[float], records: Sequence[Mapping[str, Any]], metrics: Sequence[str] = REPORT_METRICS
) -> dict[str, Any]:
    """
    One row of the table: the bin, the mean measured coverage of its records (``"coverage"``) and the
    :func:`~monai_masksup.evaluation.summarise_per_image` keys of ``metrics``.

    Args:
        name: row name (``"clean"`` or :func:`coverage_bin_name`).
        bin_range: ``(lo, hi)`` of the bin, ``(0, 0)`` for the clean row.
        records: per-image records with ``"coverage"`` and the metric keys.
        metrics: metric keys to summarise.

    Returns:
        the row as a dict (keys ``ROW_COLUMNS`` and more).
    """
    coverages = [float(r.get("coverage", 0.0)) for r in records]
    return {
        "bin": name,
        "coverage_lo": float(bin_range[0]),
        "coverage_hi": float(bin_range[1]),
        "coverage_measured": sum(coverages) / len(coverages) if coverages else None,
        **summarise_per_image(records, metrics),
    }


def write_robustness_table(
    output_dir: str | os.PathLike,
    rows: Sequence[Mapping[str, Any]],
    per_image: Mapping[str, Sequence[Mapping[str, Any]]],
    settings: Mapping[str, Any],
    json_name: str = "robustness.json",
    csv_name: str = "robustness.csv",
    plot_name: str | None = "robustness.png",
) -> dict[str, Path]:
    """
    Write the table: ``json_name`` (``{"settings", "rows", "per_image"}``, undefined values ``null``),
    ``csv_name`` (one line per row, columns ``ROW_COLUMNS``) and ``plot_name`` (mean IoU and Dice against the
    measured hole coverage in percent, the clean row at 0).

    Args:
        output_dir: folder of the files, created when missing.
        rows: table rows (:func:`robustness_row`), clean first.
        per_image: row name -> per-image records.
        settings: the evaluation's settings, stored in the JSON file.
        json_name: JSON file name.
        csv_name: CSV file name.
        plot_name: PNG file name of the chart, ``None`` for no chart.

    Returns:
        ``{"json", "csv", "plot"}`` -> path written.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": out / json_name, "csv": out / csv_name}
    with open(files["json"], "w", encoding="utf-8") as f:
        report = {"settings": settings, "rows": list(rows), "per_image": dict(per_image)}
        json.dump(json_safe(report), f, indent=2, allow_nan=False)
    with open(files["csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(ROW_COLUMNS)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row[c] for c in ROW_COLUMNS])
    if plot_name:
        files["plot"] = out / plot_name
        draw_line_chart(
            [100.0 * (row["coverage_measured"] or 0.0) for row in rows],
            {"IoU": [row.get("iou_mean") for row in rows], "Dice": [row.get("dice_mean") for row in rows]},
            files["plot"],
            title="Robustness to masked inputs",
            x_label="hole coverage (% of image)",
            y_label="mean score",
        )
    return files
