"""The MaskContrast → MaskSup fine-tuning benchmark runs end to end on the real polyp subsets in its quick form (no
score is asserted: the figures come from the full run, see docs/benchmarks.md)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT, shared_data_dir

SCRIPT = PROJECT_ROOT / "benchmarks" / "maskcontrast_finetune_polyps.py"


def _script():
    spec = importlib.util.spec_from_file_location("maskcontrast_finetune_polyps", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.real_data
def test_quick_run_reports_both_arms_and_the_pretrained_evaluations(tmp_path):
    data = shared_data_dir()
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--data-dir", str(data), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["machine"]["threads"] == 1
    assert report["train"] == 6 and report["test"] == 6  # the quick limit per split
    (run,) = report["runs"]
    assert run["seed"] == 0
    # the same fine-tuning steps in both arms, and pre-training ran its steps
    assert run["scratch"]["finetune"]["steps"] == run["pretrained"]["finetune"]["steps"] == 2
    assert run["pretraining"]["steps"] == 2
    for scores in (run["scratch"]["test"], run["pretrained"]["test"], run["saliency_head"]):
        assert set(scores) == {"iou", "dice"}
        assert 0.0 <= scores["iou"] <= scores["dice"] <= 1.0  # Dice >= IoU image by image
    for probe in (run["probe_pretrained"], run["probe_untrained"]):
        assert 0.0 <= probe["fg_iou_pooled"] <= 1.0 and 0.0 <= probe["miou_pooled"] <= 1.0
    assert [row["row"] for row in report["summary"]] == [name for name, _ in _script().ROWS]
    assert all(row["seeds"] == 1 and row["iou_std"] == 0.0 for row in report["summary"])
    assert "| MaskContrast → MaskSup fine-tuning |" in proc.stdout


@pytest.mark.slow
@pytest.mark.real_data
def test_training_and_test_splits_are_disjoint_and_cover_both_sources():
    data = shared_data_dir()
    train, test = _script().load_polyps(data, size=16)
    train_ids, test_ids = {str(f["id"]) for f in train}, {str(f["id"]) for f in test}
    assert not train_ids & test_ids
    # all 64 Kvasir-SEG and 31 CVC-ClinicDB frames of the shared subsets, each in one split
    assert len(train_ids | test_ids) == 95
    # Kvasir: the 48 Medico-train ids train, the 16 Medico-validation ids test
    assert sum("Kvasir-SEG" in i for i in train_ids) == 48 and sum("Kvasir-SEG" in i for i in test_ids) == 16
    assert sum("CVC-ClinicDB" in i for i in test_ids) >= 10
    first = train[0]
    assert tuple(first["image"].shape) == (3, 16, 16) and tuple(first["label"].shape) == (1, 16, 16)
    assert set(first["label"].unique().tolist()) <= {0.0, 1.0}
    assert float(first["image"].min()) >= -1.0 and float(first["image"].max()) <= 1.0
