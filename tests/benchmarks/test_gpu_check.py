"""The GPU check script's quick CPU mode runs end to end, so the script cannot rot between GPU loans.

It runs ``benchmarks/gpu_check.py --quick --device cpu`` once (tiny sizes, two steps each, one-epoch demo-sized
bundle runs) and checks that every section of the JSON is there with sane values and that the markdown table is
written. No timing is asserted: the targets are judged by the figures of a real GPU run.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from tests.conftest import DATA_DIR, PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
import gpu_check_report  # noqa: E402

KVASIR = DATA_DIR / "kvasir_seg" / "Kvasir-SEG"
CVC = DATA_DIR / "cvc_clinicdb" / "CVC-ClinicDB"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    cmd = [
        sys.executable, str(PROJECT_ROOT / "benchmarks" / "gpu_check.py"), "--quick", "--device", "cpu",
        "--out", str(out), "--work-dir", str(out / "work"), "--kvasir-dir", str(KVASIR), "--cvc-dir", str(CVC),
        # one small test file keeps the pytest subprocess short; the device run collects the whole suite
        "--pytest-paths", "tests/transforms/test_hole_mask_generator.py",
    ]
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "gpu_check.json").read_text()), (out / "gpu_check.md").read_text(), proc.stdout


@pytest.mark.slow
def test_quick_mode_fills_every_section(quick_run):
    result, _, _ = quick_run
    assert result["quick"] and result["finished"]
    assert 0 < result["elapsed_s"] < result["budget_s"]

    tests = result["gpu_tests"]
    assert tests["status"] == "done" and tests["returncode"] == 0
    # the one gpu-marked test of that file: skipped without CUDA, counted either way
    assert tests["passed"] + tests["skipped"] == 1 and tests["failed"] == tests["errors"] == 0

    step = result["train_step"]
    assert step["status"] == "done"
    eager = [r for r in step["rows"] if not r["compile"]]
    assert {(r["mode"], r["precision"]) for r in eager} == {
        ("separate", "fp32"), ("separate", "bf16"), ("batched", "fp32"), ("batched", "bf16")
    }
    assert [r["official"] for r in eager].count(True) == 1
    for row in step["rows"]:
        assert "error" not in row, row
        assert row["step_s"] > 0 and math.isclose(row["images_per_s"], 2 / row["step_s"])
        assert 0 < row["mask_share"] < 1
        assert row["mfu"] is None  # CPU: no peak in the table
    # 6 x forward FLOPs, and the forward count grows with the batch: a batch of 2 holds more than one image's
    assert step["forward_flops"]["2"] > 0
    assert all(row["step_flops"] == 6 * step["forward_flops"]["2"] for row in step["rows"])
    compiled = [r for r in step["rows"] if r["compile"]]
    assert len(compiled) == 1 and (compiled[0]["mode"], compiled[0]["precision"]) == ("batched", "bf16")

    masks = result["masks"]
    assert masks["status"] == "done" and [m["batch_size"] for m in masks["rows"]] == [2]
    assert masks["rows"][0]["high_masks_per_s"] > 0 and masks["rows"][0]["raw_masks_per_s"] > 0
    try:
        import cv2  # noqa: F401
    except ImportError:
        assert masks["rows"][0]["opencv_masks_per_s"] is None and "not installed" in masks["opencv_note"]


@pytest.mark.slow
def test_quick_mode_runs_bundles_and_loader_on_real_subsets(quick_run):
    if not (KVASIR.is_dir() and CVC.is_dir()):
        pytest.skip(f"real data subsets {KVASIR} / {CVC} are absent (../shared/data is not beside the project)")
    result, _, _ = quick_run
    loader = result["loader"]
    assert loader["status"] == "done", loader
    # every epoch delivers the 10 training frames of the quick Kvasir set (6 Kvasir-SEG + 4 CVC-ClinicDB)
    assert loader["n_train"] == 10 and loader["epochs"] >= 2 and loader["images"] == 10 * loader["epochs"]
    assert loader["images_per_s"] > 0
    assert loader["step_images_per_s"] > 0
    for name in ("glas", "kvasir"):
        run = result["bundles"][name]
        assert run["status"] == "done", run
        assert run["epochs_run"] == run["epochs_planned"] == 1 and run["finished_schedule"]
        assert 0 <= run["test_iou"] <= run["test_dice"] <= 1  # Dice >= IoU for every mask
        assert 0 <= run["data_wait_share"] < 1
    # quick mode: 8 generated GLaS training images, 4 test (2 testA + 2 testB); Kvasir 6 + 4 frames, 2 test
    assert (result["bundles"]["glas"]["n_train"], result["bundles"]["glas"]["n_test"]) == (8, 4)
    assert (result["bundles"]["kvasir"]["n_train"], result["bundles"]["kvasir"]["n_test"]) == (10, 2)


@pytest.mark.slow
def test_quick_mode_states_every_target_and_writes_the_markdown(quick_run):
    result, markdown, stdout = quick_run
    assert set(result["targets"]) == set(gpu_check_report.TARGETS)
    for name, target in result["targets"].items():
        assert target["status"] in ("met", "not met", "unmeasured")
    assert result["targets"]["mfu"]["status"] == "unmeasured"  # CPU
    assert markdown in stdout
    for heading in ("Test suite, `gpu` marker", "MaskSup training step", "Hole masks", "Data loading", "Bundles"):
        assert heading in markdown
    table = [line for line in markdown.splitlines() if line.startswith("| 2 | official recipe | fp32 | no |")]
    assert len(table) == 1


def test_peak_table_matches_device_names():
    assert gpu_check_report.dense_bf16_peak("NVIDIA H200") == ("H200 SXM", 989.5)
    assert gpu_check_report.dense_bf16_peak("NVIDIA H100 80GB HBM3") == ("H100 SXM", 989.5)
    assert gpu_check_report.dense_bf16_peak("NVIDIA H100 PCIe") == ("H100 PCIe", 756.5)
    assert gpu_check_report.dense_bf16_peak("NVIDIA A100-SXM4-80GB") == ("A100", 312.0)
    assert gpu_check_report.dense_bf16_peak("NVIDIA L4") == ("L4", 121.0)
    assert gpu_check_report.dense_bf16_peak("NVIDIA L40S") == ("L40S", 362.1)
    assert gpu_check_report.dense_bf16_peak("NVIDIA A10") == ("A10", 125.0)
    assert gpu_check_report.dense_bf16_peak("Tesla T4") == (None, None)


def _row(batch, mode, precision, images_per_s, compile_=False, mfu=None, mask_share=None):
    return {
        "batch_size": batch, "mode": mode, "precision": precision, "compile": compile_,
        "official": mode == "separate" and precision == "fp32" and not compile_,
        "step_s": batch / images_per_s, "images_per_s": images_per_s, "mfu": mfu, "mask_share": mask_share,
    }


def test_targets_take_the_worst_batch_and_the_best_batched_bf16():
    rows = [
        _row(8, "separate", "fp32", 100.0, mask_share=0.02),
        _row(8, "batched", "bf16", 150.0, mfu=0.20, mask_share=0.004),
        _row(8, "batched", "bf16", 250.0, compile_=True, mfu=0.33, mask_share=0.006),
        _row(32, "separate", "fp32", 120.0),
        _row(32, "batched", "bf16", 300.0, mfu=0.31, mask_share=0.002),
    ]
    result = {
        "train_step": {"rows": rows},
        "loader": {"images_per_s": 200.0, "step_images_per_s": 250.0, "step_label": "x"},
        "bundles": {"glas": {"bundle": "glas", "epochs_run": 50, "epochs_planned": 200, "finished_schedule": False}},
    }
    targets = gpu_check_report.evaluate_targets(result)
    # batch 8: compiled 250 / 100 = 2.5; batch 32: 300 / 120 = 2.5
    assert targets["batched_bf16_vs_official"]["status"] == "met"
    assert targets["batched_bf16_vs_official"]["value"] == pytest.approx(2.5)
    assert targets["mfu"]["value"] == pytest.approx(0.33) and targets["mfu"]["status"] == "met"
    # the fastest step of each batch: 0.6 % at batch 8, 0.2 % at 32
    assert targets["mask_share"]["value"] == pytest.approx(0.006) and targets["mask_share"]["status"] == "met"
    assert targets["loader"]["status"] == "not met" and targets["loader"]["value"] == pytest.approx(0.8)
    assert targets["paper_schedule"]["status"] == "not met"
    rows[4]["images_per_s"] = 200.0  # batch 32: 200 / 120 < 2
    assert gpu_check_report.evaluate_targets(result)["batched_bf16_vs_official"]["status"] == "not met"


def test_targets_are_unmeasured_without_figures():
    targets = gpu_check_report.evaluate_targets({})
    assert {t["status"] for t in targets.values()} == {"unmeasured"}


def test_update_docs_replaces_only_the_marked_table(tmp_path):
    docs = tmp_path / "benchmarks.md"
    begin, end = gpu_check_report.DOCS_BEGIN, gpu_check_report.DOCS_END
    docs.write_text(f"# B\n\n## GPU\ncommand\n{begin}\nold table\n{end}\n\n## Other\nkept\n")
    gpu_check_report.update_docs(docs, "new table\n")
    assert docs.read_text() == f"# B\n\n## GPU\ncommand\n{begin}\nnew table\n{end}\n\n## Other\nkept\n"
    docs.write_text("no markers\n")
    with pytest.raises(ValueError, match="benchmarks.md"):
        gpu_check_report.update_docs(docs, "x")


def test_markdown_of_a_run_cut_short_shows_what_is_there():
    # a run killed after its first step row: the pending sections and the error row still render
    result = {
        "train_step": {"status": "running", "rows": [
            _row(8, "separate", "fp32", 100.0),
            {"batch_size": 8, "mode": "batched", "precision": "bf16", "compile": False, "official": False,
             "error": "OutOfMemoryError: CUDA out of memory | tried"},
        ]},
        "bundles": {"glas": {"bundle": "glas", "status": "running"}},
    }
    result["targets"] = gpu_check_report.evaluate_targets(result)
    markdown = gpu_check_report.render_markdown(result)
    assert "| 8 | official recipe | fp32 | no | 80.0 | 100.0 | 1.00 |" in markdown
    assert "OutOfMemoryError: CUDA out of memory / tried" in markdown  # a pipe would split the table cell
    assert "*running*" in markdown and "| glas |  | running:" in markdown
    assert gpu_check_report.render_markdown({})  # nothing measured yet
