"""The mask benchmark script still runs end to end (tiny sizes; no timing is asserted: speed targets are
checked by running the benchmark itself, see docs/benchmarks.md)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import PROJECT_ROOT


def test_bench_masks_prints_a_row_and_a_ratio_per_coverage():
    script = PROJECT_ROOT / "benchmarks" / "bench_masks.py"
    args = ["--repeats", "2", "--size", "32", "--batch-size", "2", "--threads", "1", "--coverage", "none", "high"]
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for coverage in ("none", "high"):
        row = next(line for line in out.stdout.splitlines() if line.startswith(f"HoleMaskGenerator coverage={coverage} (cpu)"))
        ms_per_batch = float(row.split()[3])
        assert ms_per_batch > 0
    try:
        import cv2  # noqa: F401
    except ImportError:
        assert "opencv loop (CPU): not measured" in out.stdout
    else:
        assert "ratio to the OpenCV loop" in out.stdout
