"""Robustness to hole-masked inputs with a network whose response to masking is known by hand."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from monai.data import DataLoader, Dataset, MetaTensor
from monai.transforms import Activationsd, AsDiscreted, Compose
from PIL import Image

from monai_masksup.evaluation import MaskedInputBatch
from monai_masksup.evaluation.masked_robustness import MaskedRobustnessEvaluation
from monai_masksup.transforms import HoleMaskGenerator

BINS = ((0.0, 0.1), (0.2, 0.3), (0.4, 0.5), (0.5, 0.6))


def _sign_network() -> torch.nn.Module:
    """1x1 conv with weight 1, bias 0: logits = image, so foreground exactly where the image is > 0.

    Holes are filled with -1 (logit -1): masked foreground becomes background. (A fill of 0 would give logit 0,
    sigmoid 0.5, which MONAI's ``AsDiscrete(threshold=0.5)`` counts as foreground: it thresholds with ``>=``.)
    """
    net = torch.nn.Conv2d(1, 1, kernel_size=1)
    with torch.no_grad():
        net.weight.fill_(1.0)
        net.bias.zero_()
    return net


def _loader(n_batches: int = 3, batch_size: int = 2, size: int = 32) -> DataLoader:
    rng = torch.Generator().manual_seed(123)
    items = []
    for b in range(n_batches):
        for i in range(batch_size):
            image = torch.rand(1, size, size, generator=rng) * 2 - 1
            items.append(
                {
                    "image": MetaTensor(image, meta={"filename_or_obj": f"/data/test/img_{b}_{i}.png"}),
                    "label": (image > 0).float(),
                }
            )
    return DataLoader(Dataset(items), batch_size=batch_size, shuffle=False, num_workers=0)


@pytest.fixture(scope="module")
def robustness_run(tmp_path_factory):
    net = _sign_network()
    net.train()
    out = tmp_path_factory.mktemp("robustness")
    summary = MaskedRobustnessEvaluation(
        net, _loader(2, 3), "cpu", str(out), bins=BINS, seed=0, n_examples=4, fill_value=-1.0
    ).run()
    return net, summary


def test_iou_falls_with_hole_coverage_and_clean_is_perfect(robustness_run):
    net, summary = robustness_run
    rows = summary["rows"]
    assert [r["bin"] for r in rows] == ["clean", "0-10%", "20-30%", "40-50%", "50-60%"]
    clean = rows[0]
    assert clean["n_images"] == 6
    assert clean["iou_mean"] == 1.0 and clean["dice_mean"] == pytest.approx(1.0) and clean["hd95_mean"] == 0.0
    assert clean["coverage_measured"] == 0.0
    for row, (lo, hi) in zip(rows[1:], BINS):
        assert row["n_images"] == 6
        assert lo <= row["coverage_measured"] <= hi
        # holes are independent of the image, so about a `coverage` share of the foreground is lost
        assert row["iou_mean"] == pytest.approx(1.0 - row["coverage_measured"], abs=0.08)
    ious = [r["iou_mean"] for r in rows]
    assert all(a > b for a, b in zip(ious, ious[1:]))
    # the caller's training mode is restored
    assert net.training


def test_files_are_written_and_hold_the_rows(robustness_run):
    _, summary = robustness_run
    files = summary["files"]
    with open(files["json"]) as f:
        report = json.load(f)
    assert [r["bin"] for r in report["rows"]] == [r["bin"] for r in summary["rows"]]
    assert len(report["per_image"]["clean"]) == 6
    names = [r["image"] for r in report["per_image"]["50-60%"]]
    assert names == [f"img_{b}_{i}.png" for b in range(2) for i in range(3)]
    with open(files["csv"], newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 1 + 1 + len(BINS)
    assert rows[0][:3] == ["bin", "coverage_lo", "coverage_hi"] and rows[1][0] == "clean"
    assert float(rows[-1][rows[0].index("iou_mean")]) == pytest.approx(summary["rows"][-1]["iou_mean"])
    with Image.open(files["plot"]) as plot:
        assert plot.width > 0 and plot.height > 0
    with Image.open(files["sheet"]) as sheet:
        # five columns of equal square tiles by four example rows (taken across the two batches)
        assert sheet.width / sheet.height == pytest.approx(5 / 4, rel=0.15)


def test_same_seed_reproduces_and_other_seed_differs(tmp_path):
    bins = ((0.2, 0.3), (0.5, 0.6))

    def run(seed: int, folder: str) -> dict:
        evaluation = MaskedRobustnessEvaluation(
            _sign_network(), _loader(2, 2), "cpu", str(tmp_path / folder), bins=bins, seed=seed, n_examples=0,
            fill_value=-1.0,
        )
        out = evaluation.run()
        with open(out["files"]["json"]) as f:
            first = json.load(f)["per_image"]
        assert evaluation.run()["rows"] == out["rows"]  # a second run masks the same way
        return first

    first, again, other = run(0, "a"), run(0, "b"), run(1, "c")
    assert first == again
    assert first["clean"] == other["clean"]
    assert [r["coverage"] for r in first["50-60%"]] != [r["coverage"] for r in other["50-60%"]]


def test_two_channel_output_scores_its_foreground_with_the_callers_postprocessing(tmp_path):
    # channels (0, image): softmax channel 1 = sigmoid(image), the same decisions as the 1-channel net
    net = torch.nn.Conv2d(1, 2, kernel_size=1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([0.0, 1.0]).reshape(2, 1, 1, 1))
        net.bias.zero_()
    postprocessing = Compose([Activationsd(keys="pred", softmax=True), AsDiscreted(keys="pred", argmax=True)])
    rows = MaskedRobustnessEvaluation(
        net, _loader(1), "cpu", str(tmp_path), bins=BINS[-1:], postprocessing=postprocessing, n_examples=0,
        fill_value=-1.0,
    ).run()["rows"]
    assert rows[0]["iou_mean"] == 1.0
    assert rows[1]["iou_mean"] < 1.0


def test_bad_bins_are_reported(tmp_path):
    with pytest.raises(ValueError, match="bins"):
        MaskedRobustnessEvaluation(_sign_network(), _loader(1), "cpu", str(tmp_path), bins=((0.3, 0.2),))
    with pytest.raises(ValueError, match="example_bin"):
        MaskedRobustnessEvaluation(_sign_network(), _loader(1), "cpu", str(tmp_path), bins=BINS, example_bin=4)


def test_masked_input_batch_fills_the_holes_and_stores_the_masks():
    image = torch.full((2, 3, 16, 16), 5.0)
    batch = {"image": image, "label": torch.zeros(2, 1, 16, 16)}
    prepare = MaskedInputBatch(HoleMaskGenerator(coverage=(0.3, 0.4)), seed=7, fill_value=-1.0)
    masked, label = prepare(batch, torch.device("cpu"))
    hole = batch["hole_mask"]
    assert hole.shape == (2, 1, 16, 16) and label.shape == (2, 1, 16, 16)
    assert torch.equal(masked, torch.where(hole.bool().expand(-1, 3, -1, -1), -1.0, 5.0))
    prepare.reset()
    assert torch.equal(prepare(dict(batch), torch.device("cpu"))[0], masked)
