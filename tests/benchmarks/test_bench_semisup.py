"""The semi-supervised benchmark script still runs end to end on the real polyp subsets (two steps, one seed; no
score or timing is asserted: the figures come from running the benchmark itself, see docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT, shared_data_dir


@pytest.mark.slow
@pytest.mark.real_data
def test_bench_semisup_reports_every_method_with_a_step_ratio(tmp_path):
    data = shared_data_dir()
    out = tmp_path / "bench.json"
    script = PROJECT_ROOT / "benchmarks" / "bench_semisup.py"
    args = ["--data-dir", str(data), "--steps", "2", "--seeds", "0", "--size", "32", "--n-test", "5", "--out", str(out)]
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["frames"] == 95 and report["test"] == 5 and report["labeled"] == 9
    assert [r["method"] for r in report["runs"]] == ["supervised", "cutmix_mt", "cutmix_mt_masksup"]
    assert all(r["steps"] == 2 for r in report["runs"])
    rows = {(r["method"], r["network"]): r for r in report["summary"]}
    assert rows[("supervised", "student")]["x_supervised"] == 1.0
    assert ("cutmix_mt", "teacher") in rows and ("cutmix_mt_masksup", "teacher") in rows
    assert "| cutmix_mt_masksup | teacher |" in proc.stdout
