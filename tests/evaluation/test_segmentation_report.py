"""The report's own parts: per-image records from metric details, their summary, image names.

The report written by an evaluator is tested in ``tests/handlers/test_segmentation_report.py``.
"""

from __future__ import annotations

import math

import pytest
import torch
from monai.data import MetaTensor

from monai_masksup.evaluation import image_meta, image_name, per_image_records, summarise_per_image


def test_summary_excludes_undefined_values_and_counts_them():
    records = [
        {"image": "a", "iou": 0.5, "dice": 0.6, "hd95": 2.0},
        {"image": "b", "iou": 1.0, "dice": 1.0, "hd95": None},
        {"image": "c", "iou": 0.0, "dice": 0.2, "hd95": float("inf")},
        {"image": "d", "iou": 0.5, "dice": 0.2, "hd95": 4.0},
    ]
    summary = summarise_per_image(records)
    assert summary["n_images"] == 4
    assert summary["iou_mean"] == pytest.approx(0.5)
    assert summary["iou_std"] == pytest.approx(math.sqrt((0 + 0.25 + 0.25 + 0) / 4))
    assert summary["dice_mean"] == pytest.approx(0.5)
    assert summary["hd95_mean"] == pytest.approx(3.0)
    assert summary["hd95_count"] == 2 and summary["hd95_excluded"] == 2
    assert summary["iou_excluded"] == 0


def test_summary_of_all_undefined_metric_is_none():
    summary = summarise_per_image([{"image": "a", "iou": 1.0, "dice": 1.0, "hd95": None}])
    assert summary["hd95_mean"] is None and summary["hd95_excluded"] == 1


def test_records_average_channels_and_leave_undefined_values_out():
    details = {
        "iou": torch.tensor([[0.5], [1.0]]),
        # two channels: the record holds their NaN-free mean, None when no channel is defined
        "hd95": torch.tensor([[2.0, float("nan")], [float("nan"), float("inf")]]),
    }
    records = per_image_records(details, ["a.png", "b.png"])
    assert records == [{"image": "a.png", "iou": 0.5, "hd95": 2.0}, {"image": "b.png", "iou": 1.0, "hd95": None}]
    assert [r["image"] for r in per_image_records({"iou": torch.zeros(2, 1)})] == ["case_0000", "case_0001"]


def test_records_reject_mismatched_names_and_columns():
    with pytest.raises(ValueError, match="names"):
        per_image_records({"iou": torch.zeros(2, 1)}, ["a.png"])
    with pytest.raises(ValueError, match="different numbers of images"):
        per_image_records({"iou": torch.zeros(2, 1), "dice": torch.zeros(3, 1)})


def test_image_names_are_file_base_names_read_from_the_meta_data():
    assert image_name("/data/test/img_3.png", 3) == "img_3.png"
    assert image_name(None, 7) == "case_0007" and image_name("None", 2) == "case_0002"
    named = MetaTensor(torch.zeros(1, 2, 2), meta={"filename_or_obj": "/x/a.png"})
    batch = [{"image": named}, {"image": torch.zeros(1)}]
    assert image_meta()(batch)[0]["filename_or_obj"] == "/x/a.png" and image_meta()(batch)[1] == {}
