"""The Duke multi-label deep-supervision table runs end to end with ``--quick``, on the real subset and on a generated
folder in the Duke layout. Structure and sanity only: the figures come from the benchmark's own run (see
docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import PROJECT_ROOT, shared_data_dir

SCRIPT = PROJECT_ROOT / "benchmarks" / "mlds_duke_table.py"
ROWS = ["U-Net", "MLDS", "Self-Taught", "Mean-Taught", "Mean-Taught (EMA teacher)"]


def _run_quick(data_dir, out):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--data-dir", str(data_dir), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=PROJECT_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(out.with_suffix(".json").read_text())


def _check_report(proc, report, n_scans_per_subject):
    splits = report["splits"]
    # one split per held-out subject, each tested on the whole other subject, never on a training scan
    assert sorted(s["test_subject"] for s in splits) == [1, 2]
    for s in splits:
        train = s["pixel"] + s["image"] + s["unlabelled"]
        assert len(s["pixel"]) == 3 and len(s["test"]) == n_scans_per_subject
        assert len(train) == n_scans_per_subject and not set(train) & set(s["test"])
        assert len(s["image"]) == round(0.5 * (n_scans_per_subject - 3))
    assert {r["mode"] for r in report["runs"]} == {"unet", "supervised", "self_taught", "mean_taught"}
    assert all(r["steps"] == 2 for r in report["runs"])
    for r in report["runs"]:
        for who in ("student", "teacher", "train_pixel"):
            for value in r.get(who, {}).values():
                assert 0.0 <= value <= 1.0
        assert ("teacher" in r) == (r["mode"] == "mean_taught")
    summary = report["summary"]
    assert [row["method"] for row in summary] == ROWS
    for row in summary:
        assert row["splits"] == 2
        assert row["fluid_iou"]["n"] == 2 and row["fluid_iou"]["std"] >= 0.0
        assert 0.0 <= row["miou"]["mean"] <= 1.0
    for name in ROWS:
        assert f"| {name} |" in proc.stdout


@pytest.mark.slow
@pytest.mark.real_data
def test_quick_table_on_the_real_duke_subset_has_every_method_over_both_subjects(tmp_path):
    data = shared_data_dir("duke_oct")
    proc, report = _run_quick(data, tmp_path / "table")
    _check_report(proc, report, n_scans_per_subject=11)
    assert (tmp_path / "table.md").read_text().count("\n| ") == len(ROWS) + 1


def _write_duke_layout(root, n_scans=22, size=(96, 64)):
    """Generated B-scans in the Duke export's layout: RGB PNGs, fluid stored as 255 (region 1), some empty masks."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks_fluid1").mkdir()
    for i in range(n_scans):
        image = rng.integers(0, 120, size=(size[1], size[0]), dtype=np.uint8)
        mask = np.zeros_like(image)
        if i % 3:
            r, c = rng.integers(10, size[1] - 20), rng.integers(10, size[0] - 30)
            mask[r : r + 8, c : c + 16] = 255
            image[r : r + 8, c : c + 16] = 200
        Image.fromarray(np.stack([image] * 3, -1)).save(root / "images" / f"img_{i}.png")
        Image.fromarray(np.stack([mask] * 3, -1)).save(root / "masks_fluid1" / f"img_{i}.png")


@pytest.mark.slow
def test_quick_table_runs_on_generated_scans_in_the_duke_layout(tmp_path):
    _write_duke_layout(tmp_path / "duke")
    proc, report = _run_quick(tmp_path / "duke", tmp_path / "table")
    _check_report(proc, report, n_scans_per_subject=11)


def test_missing_data_folder_is_a_clear_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--data-dir", str(tmp_path / "absent"), "--out", str(tmp_path / "t")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert proc.returncode == 2 and "absent" in proc.stderr
