"""Per-image report: hand-computed IoU / Dice / HD95, empty-mask conventions, JSON and CSV files, handler."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from monai.data import DataLoader, Dataset, MetaTensor
from monai.engines import SupervisedEvaluator
from monai.handlers import from_engine
from monai.transforms import Activationsd, AsDiscreted, Compose

from monai_masksup.evaluation import (
    SegmentationReportHandler,
    score_images,
    summarise_per_image,
    write_segmentation_report,
)


def _square(size: int, rows: slice, cols: slice) -> torch.Tensor:
    mask = torch.zeros(1, size, size)
    mask[0, rows, cols] = 1.0
    return mask


def _hand_made_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Five cases; the expected values are derived in ``test_scores_match_hand_computed_values``."""
    preds, labels = [], []
    # 0: 4x4 square shifted right by 2 pixels
    labels.append(_square(16, slice(4, 8), slice(4, 8)))
    preds.append(_square(16, slice(4, 8), slice(6, 10)))
    # 1: disjoint 3x3 squares, 8 columns apart
    labels.append(_square(16, slice(2, 5), slice(2, 5)))
    preds.append(_square(16, slice(2, 5), slice(10, 13)))
    # 2: both empty
    labels.append(torch.zeros(1, 16, 16))
    preds.append(torch.zeros(1, 16, 16))
    # 3: empty prediction of a non-empty label
    labels.append(_square(16, slice(4, 8), slice(4, 8)))
    preds.append(torch.zeros(1, 16, 16))
    # 4: perfect
    labels.append(_square(16, slice(1, 6), slice(3, 9)))
    preds.append(_square(16, slice(1, 6), slice(3, 9)))
    return torch.stack(preds), torch.stack(labels)


def test_scores_match_hand_computed_values():
    y_pred, y = _hand_made_batch()
    records = score_images(y_pred, y, names=[f"img{i}.png" for i in range(5)])
    assert [r["image"] for r in records] == [f"img{i}.png" for i in range(5)]
    # case 0: |P&G| = 4*2 = 8, |P|G| = 16 + 16 - 8 = 24; Dice = 2*8 / 32.
    # HD95: the 4 edge pixels of the far column are 2 px from the other square's edge (the maximum),
    # 4 of 12 distances > 5 %, so the 95th percentile is 2 in both directions.
    assert records[0]["iou"] == pytest.approx(8 / 24)
    assert records[0]["dice"] == pytest.approx(0.5)
    assert records[0]["hd95"] == pytest.approx(2.0)
    # case 1: no overlap; the nearest edge column of the other square is 8, 7, 6 px away for
    # columns 2, 3, 4; 3 of 8 edge pixels are at the maximum 8.
    assert records[1]["iou"] == 0.0 and records[1]["dice"] == 0.0
    assert records[1]["hd95"] == pytest.approx(8.0)
    # case 2: both empty -> IoU and Dice 1, HD95 undefined
    assert records[2] == {"image": "img2.png", "iou": 1.0, "dice": 1.0, "hd95": None}
    # case 3: empty prediction -> 0, HD95 undefined
    assert records[3] == {"image": "img3.png", "iou": 0.0, "dice": 0.0, "hd95": None}
    # case 4: perfect
    assert records[4]["iou"] == 1.0 and records[4]["dice"] == pytest.approx(1.0) and records[4]["hd95"] == 0.0


def test_one_hot_inputs_score_like_single_channel():
    y_pred, y = _hand_made_batch()
    one_hot_pred = torch.cat([1 - y_pred, y_pred], dim=1)
    one_hot_label = torch.cat([1 - y, y], dim=1)
    assert score_images(one_hot_pred, one_hot_label) == score_images(y_pred, y)


def test_score_images_rejects_mismatched_shapes_and_names():
    with pytest.raises(ValueError, match="same shape"):
        score_images(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 9))
    with pytest.raises(ValueError, match="names"):
        score_images(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), names=["a.png"])


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


def test_report_files_hold_one_row_per_image_and_means(tmp_path):
    y_pred, y = _hand_made_batch()
    records = score_images(y_pred, y, names=[f"img{i}.png" for i in range(5)])
    summary = write_segmentation_report(records, str(tmp_path / "out"))

    with open(tmp_path / "out" / "metrics.json") as f:
        report = json.load(f)
    assert report["summary"] == summary
    assert len(report["per_image"]) == 5
    assert report["per_image"][2]["hd95"] is None
    # IoU mean over all five: (1/3 + 0 + 1 + 0 + 1) / 5; HD95 over the three defined: (2 + 8 + 0) / 3
    assert summary["iou_mean"] == pytest.approx((1 / 3 + 0 + 1 + 0 + 1) / 5)
    assert summary["hd95_mean"] == pytest.approx(10 / 3)
    assert summary["hd95_excluded"] == 2

    with open(tmp_path / "out" / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["image", "iou", "dice", "hd95"]
    assert len(rows) == 1 + 5 + 1
    assert [r[0] for r in rows[1:6]] == [f"img{i}.png" for i in range(5)]
    assert rows[3][3] == "" and rows[4][3] == ""  # undefined HD95 left empty
    assert rows[-1][0] == "mean"
    assert float(rows[-1][3]) == pytest.approx(10 / 3)


class _ThresholdAtZero(torch.nn.Module):
    """Logits = 10 * image: the sigmoid is > 0.5 exactly where the image is > 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 10.0 * x[:, :1]


def _evaluation_data(tmp_path) -> list[dict]:
    items = []
    for index in range(3):
        image = -torch.ones(1, 12, 12)
        image[0, 2:6, 2 + index : 6 + index] = 1.0  # predicted square moves right with the index
        label = _square(12, slice(2, 6), slice(2, 6))
        path = str(tmp_path / f"case{index}.png")
        items.append(
            {
                "image": MetaTensor(image, meta={"filename_or_obj": path}),
                "label": MetaTensor(label, meta={"filename_or_obj": path.replace("case", "mask")}),
            }
        )
    return items


@pytest.mark.parametrize("from_logits", [False, True])
def test_handler_on_supervised_evaluator_writes_report_named_by_image_file(tmp_path, from_logits):
    loader = DataLoader(Dataset(_evaluation_data(tmp_path)), batch_size=2)
    postprocessing = (
        None
        if from_logits
        else Compose([Activationsd(keys="pred", sigmoid=True), AsDiscreted(keys="pred", threshold=0.5)])
    )
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=loader,
        network=_ThresholdAtZero(),
        postprocessing=postprocessing,
    )
    handler = SegmentationReportHandler(
        output_dir=str(tmp_path / "eval"), output_transform=from_engine(["pred", "label"]), from_logits=from_logits
    )
    handler.attach(evaluator)
    evaluator.run()

    with open(tmp_path / "eval" / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert [r[0] for r in rows[1:]] == ["case0.png", "case1.png", "case2.png", "mean"]
    # shift 0, 1, 2 of a 4x4 square: IoU = 16/16, 12/20, 8/24
    expected_iou = [1.0, 12 / 20, 8 / 24]
    assert [float(r[1]) for r in rows[1:4]] == pytest.approx(expected_iou)
    assert handler.summary["iou_mean"] == pytest.approx(sum(expected_iou) / 3)
    assert evaluator.state.metrics["report_iou"] == pytest.approx(sum(expected_iou) / 3)
    # Dice = 2|P&G| / (|P| + |G|): 1, 24/32, 16/32
    assert handler.summary["dice_mean"] == pytest.approx((1.0 + 0.75 + 0.5) / 3)
    with open(tmp_path / "eval" / "metrics.json") as f:
        assert len(json.load(f)["per_image"]) == 3
