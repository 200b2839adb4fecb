"""The GLaS bundle end to end on generated Warwick-layout data: train, evaluate, infer; and its data errors."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from monai_masksup.data import DatasetLayoutError, make_synthetic_glas
from tests.bundles.conftest import GLAS_BUNDLE, TINY_RUN, bundle_run, exception_chain

N_TRAIN, N_TEST_A, N_TEST_B = 8, 2, 1
SIZE = (60, 84)  # (height, width): not square and not the network size, so resizing back is visible


@pytest.fixture(scope="module")
def glas_run(tmp_path_factory):
    """Synthetic GLaS data and a 2-epoch training run of the bundle with the demo overlay on them."""
    root = tmp_path_factory.mktemp("glas_bundle")
    data = make_synthetic_glas(root / "data", n_train=N_TRAIN, n_test_a=N_TEST_A, n_test_b=N_TEST_B, size=SIZE)
    common = {"bundle_root": str(root / "bundle"), "dataset_dir": str(data), **TINY_RUN}
    bundle_run(GLAS_BUNDLE, ["train.json", "demo.json"], epochs=2, **common)
    return {"root": root, "data": data, "common": common, "bundle_root": root / "bundle"}


@pytest.mark.slow
def test_train_writes_best_model_state_checkpoint_and_tensorboard(glas_run):
    models = glas_run["bundle_root"] / "models"
    assert (models / "model.pt").is_file()
    state = torch.load(models / "checkpoint_epoch=2.pt", map_location="cpu", weights_only=True)
    assert set(state) == {"model", "optimizer", "trainer", "best_model_record", "random_states", "extra_state"}
    assert state["trainer"]["iteration"] == 2 * state["trainer"]["epoch_length"]
    # the best model file is a plain state dict that loads into the network with strict=True
    best = torch.load(models / "model.pt", map_location="cpu", weights_only=True)
    assert set(best) == set(state["model"])

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((glas_run["bundle_root"] / "eval" / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(events[0]))
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    assert {"loss", "loss_seg", "loss_context", "loss_task_sim", "lr", "val_iou", "val_dice"} <= scalars
    assert [e.value for e in acc.Scalars("lr")][0] == pytest.approx(0.002)  # demo.json's learning rate
    assert [e.step for e in acc.Scalars("val_iou")] == [1, 2]
    images = acc.Tags()["images"]
    assert "train/image_masked_pred_label" in images and "val/image_pred_label" in images
    grid = acc.Images("train/image_masked_pred_label")[0]
    # 4 columns (image, masked image, prediction, label) of 64 px with 2 px padding
    assert grid.width == 4 * (64 + 2) + 2


@pytest.mark.slow
def test_evaluate_writes_report_and_masked_robustness(glas_run):
    bundle_run(GLAS_BUNDLE, ["train.json", "demo.json", "evaluate.json"], **glas_run["common"])
    eval_dir = glas_run["bundle_root"] / "eval"
    report = json.loads((eval_dir / "metrics.json").read_text())
    assert len(report["per_image"]) == N_TEST_A + N_TEST_B
    names = sorted(row["image"] for row in report["per_image"])
    assert names == ["testA_1.bmp", "testA_2.bmp", "testB_1.bmp"]
    for row in report["per_image"]:
        assert 0.0 <= row["iou"] <= 1.0 and 0.0 <= row["dice"] <= 1.0
        # Dice and IoU of one binary pair are tied: dice = 2 iou / (1 + iou)
        assert row["dice"] == pytest.approx(2 * row["iou"] / (1 + row["iou"]), abs=1e-5)
    # MONAI's MetricsSaver: the epoch means in metrics.csv, one row per image and metric in <metric>_raw.csv
    with open(eval_dir / "metrics.csv", newline="") as f:
        means = {row[0]: float(row[1]) for row in csv.reader(f)}
    assert means["test_iou"] == pytest.approx(report["summary"]["iou_mean"], abs=1e-5)
    with open(eval_dir / "test_iou_raw.csv", newline="") as f:
        csv_images = [os.path.basename(row["filename"]) for row in csv.DictReader(f)]
    assert sorted(csv_images) == names
    with open(eval_dir / "robustness.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["bin"] for r in rows] == ["clean", "0-10%", "10-20%", "20-30%", "30-40%", "40-50%", "50-60%"]
    for row in rows[1:]:
        assert float(row["coverage_lo"]) < float(row["coverage_measured"]) <= float(row["coverage_hi"])
        assert 0.0 <= float(row["iou_mean"]) <= 1.0
    # the clean row of the robustness table is the same evaluation as the report
    assert float(rows[0]["iou_mean"]) == pytest.approx(report["summary"]["iou_mean"], abs=1e-5)
    for png in ("robustness.png", "robustness_examples.png"):
        with Image.open(eval_dir / png) as im:
            assert im.width > 50 and im.height > 50


@pytest.mark.slow
def test_inference_writes_one_binary_png_per_input_at_original_size(glas_run):
    bundle_run(GLAS_BUNDLE, ["inference.json", "demo.json"], **glas_run["common"])
    pred_dir = glas_run["bundle_root"] / "eval" / "predictions"
    written = sorted(p.name for p in pred_dir.glob("*.png"))
    assert written == ["testA_1_mask.png", "testA_2_mask.png", "testB_1_mask.png"]
    for name in written:
        with Image.open(pred_dir / name) as mask, Image.open(glas_run["data"] / name.replace("_mask.png", ".bmp")) as im:
            assert mask.size == im.size == (SIZE[1], SIZE[0])
            assert mask.mode == "L"
            assert set(np.unique(np.asarray(mask))) <= {0, 255}


@pytest.mark.slow
def test_inference_on_an_input_folder(glas_run, tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    Image.new("RGB", (70, 50), (200, 120, 180)).save(folder / "slide.png")
    out = tmp_path / "out"
    bundle_run(GLAS_BUNDLE, ["inference.json", "demo.json"], **{**glas_run["common"], "input_dir": str(folder), "prediction_dir": str(out)})
    with Image.open(out / "slide_mask.png") as mask:
        assert mask.size == (70, 50)


def test_missing_dataset_stops_with_layout_error(tmp_path):
    missing = tmp_path / "no_glas_here"
    with pytest.raises(Exception) as info:
        bundle_run(GLAS_BUNDLE, ["train.json"], bundle_root=str(tmp_path / "b"), dataset_dir=str(missing))
    layout_errors = [e for e in exception_chain(info.value) if isinstance(e, DatasetLayoutError)]
    assert layout_errors, f"expected a DatasetLayoutError, got {info.value!r}"
    message = str(layout_errors[0])
    assert str(missing) in message and "warwick.ac.uk" in message
    assert not (tmp_path / "b" / "models").exists()


@pytest.mark.slow
def test_fresh_training_into_an_earlier_run_stops_and_keeps_its_files(glas_run):
    models = glas_run["bundle_root"] / "models"
    before = {p.name: p.read_bytes() for p in models.iterdir()}
    with pytest.raises(Exception) as info:
        bundle_run(GLAS_BUNDLE, ["train.json", "demo.json"], epochs=1, **glas_run["common"])
    refusals = [e for e in exception_chain(info.value) if isinstance(e, FileExistsError)]
    assert refusals and "--resume true" in str(refusals[0]) and str(models) in str(refusals[0])
    assert {p.name: p.read_bytes() for p in models.iterdir()} == before
