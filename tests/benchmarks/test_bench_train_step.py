"""The step benchmark's machine description, which the GPU check reports too."""

from __future__ import annotations

import os
import sys

import torch

from tests.conftest import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
import bench_train_step  # noqa: E402
import gpu_check  # noqa: E402


def test_gpu_check_describes_the_machine_with_the_step_benchmarks_function():
    assert gpu_check.hardware is bench_train_step.hardware


def test_cpu_description_names_cores_and_versions():
    info = bench_train_step.hardware("cpu")
    assert info["device"] == "cpu" and info["device_name"].startswith("CPU (")
    assert info["cpu"].endswith(f", {os.cpu_count()} logical cores") and info["torch"] == torch.__version__
    assert "cuda" not in info and info["summary"].startswith(info["device_name"] + "; " + info["cpu"])
