"""Per-image report of a SupervisedEvaluator: MONAI metric handlers + MetricsSaver files + metrics.json.

The values are hand-computed (the derivations are in the comments); they are the numbers the hand-written
report pinned before it was replaced by MONAI's handlers.
"""

from __future__ import annotations

import csv
import json

import pytest
import torch
from monai.data import DataLoader, Dataset, MetaTensor
from monai.engines import SupervisedEvaluator
from monai.transforms import Activationsd, AsDiscreted, Compose

from monai_masksup.handlers import EvaluationMetrics, SegmentationReportSaver, segmentation_metrics

COLUMNS = {"iou": "test_iou", "dice": "test_dice", "hd95": "test_hd95"}


def _square(size: int, rows: slice, cols: slice) -> torch.Tensor:
    mask = torch.zeros(1, size, size)
    mask[0, rows, cols] = 1.0
    return mask


def _hand_made_cases() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Five cases; the expected values are derived in ``test_report_holds_hand_computed_per_image_values``."""
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
    return preds, labels


def _run(tmp_path, one_hot: bool = False, batch_size: int = 2) -> tuple[SupervisedEvaluator, SegmentationReportSaver]:
    """An identity network on images holding logits +-1, so that sigmoid > 0.5 recovers the hand-made masks."""
    preds, labels = _hand_made_cases()
    items = []
    for index, (pred, label) in enumerate(zip(preds, labels)):
        if one_hot:
            pred, label = torch.cat([1 - pred, pred]), torch.cat([1 - label, label])
        items.append(
            {
                "image": MetaTensor(2.0 * pred - 1.0, meta={"filename_or_obj": f"/data/test/img{index}.png"}),
                "label": label,
            }
        )
    saver = SegmentationReportSaver(str(tmp_path / "out"), COLUMNS)
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(Dataset(items), batch_size=batch_size),
        network=torch.nn.Identity(),
        postprocessing=Compose([Activationsd(keys="pred", sigmoid=True), AsDiscreted(keys="pred", threshold=0.5)]),
        val_handlers=[EvaluationMetrics(segmentation_metrics(prefix="test_")), saver],
    )
    evaluator.run()
    return evaluator, saver


def test_report_holds_hand_computed_per_image_values(tmp_path):
    evaluator, saver = _run(tmp_path)
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    records = report["per_image"]
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

    # IoU mean over all five: (1/3 + 0 + 1 + 0 + 1) / 5; HD95 over the three defined: (2 + 8 + 0) / 3
    summary = report["summary"]
    assert summary == saver.summary
    assert summary["n_images"] == 5
    assert summary["iou_mean"] == pytest.approx((1 / 3 + 0 + 1 + 0 + 1) / 5)
    assert summary["hd95_mean"] == pytest.approx(10 / 3)
    assert summary["hd95_excluded"] == 2 and summary["iou_excluded"] == 0
    # the evaluator logs the same means under the evaluation's own names, with no key metric
    assert evaluator.state.metrics["test_iou"] == pytest.approx(summary["iou_mean"])
    assert evaluator.state.metrics["test_hd95"] == pytest.approx(10 / 3)
    assert evaluator.state.key_metric_name is None


def test_monai_metrics_saver_writes_the_csv_files(tmp_path):
    _run(tmp_path)
    out = tmp_path / "out"
    with open(out / "metrics.csv", newline="") as f:
        means = {row[0]: float(row[1]) for row in csv.reader(f)}
    assert means["test_iou"] == pytest.approx((1 / 3 + 0 + 1 + 0 + 1) / 5)
    assert means["test_dice"] == pytest.approx((0.5 + 0 + 1 + 0 + 1) / 5)
    with open(out / "test_hd95_raw.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["filename"] for row in rows] == [f"/data/test/img{i}.png" for i in range(5)]
    assert float(rows[1]["class0"]) == pytest.approx(8.0) and rows[2]["class0"] == "nan"


def test_one_hot_outputs_score_their_foreground_like_single_channel(tmp_path):
    _run(tmp_path / "a")
    _run(tmp_path / "b", one_hot=True, batch_size=3)
    single = json.loads((tmp_path / "a" / "out" / "metrics.json").read_text())
    one_hot = json.loads((tmp_path / "b" / "out" / "metrics.json").read_text())
    assert one_hot == single


def test_a_metric_without_details_is_named(tmp_path):
    saver = SegmentationReportSaver(str(tmp_path), {"iou": "test_iou", "dice": "missing_dice"})
    items = [{"image": torch.ones(1, 4, 4), "label": torch.ones(1, 4, 4)}]
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(Dataset(items), batch_size=1),
        network=torch.nn.Identity(),
        postprocessing=AsDiscreted(keys="pred", threshold=0.5),
        val_handlers=[EvaluationMetrics({"test_iou": segmentation_metrics()["iou"]}), saver],
    )
    with pytest.raises(ValueError, match="missing_dice"):
        evaluator.run()


def test_empty_report_columns_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="metric_details"):
        SegmentationReportSaver(str(tmp_path), {})
    with pytest.raises(ValueError, match="metrics"):
        EvaluationMetrics({})


def test_report_names_images_without_metrics_savers_private_file_list(tmp_path, monkeypatch):
    from monai.handlers import MetricsSaver

    # MetricsSaver's own collection (its private `_filenames`) gathers nothing: the JSON names must not depend on it
    monkeypatch.setattr(MetricsSaver, "_get_filenames", lambda self, engine: None)
    _run(tmp_path)
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert [r["image"] for r in report["per_image"]] == [f"img{i}.png" for i in range(5)]
