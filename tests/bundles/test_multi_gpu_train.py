"""multi_gpu_train.json runs under torchrun; on a CPU-only machine with the gloo backend and 2 processes."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from monai_masksup.data import make_synthetic_glas
from tests.bundles.conftest import GLAS_BUNDLE, TINY_RUN, cli_args, configs, subprocess_env


@pytest.mark.slow
def test_two_process_gloo_training_finishes_with_one_checkpoint(tmp_path):
    data = make_synthetic_glas(tmp_path / "data", n_train=8, n_test_a=1, n_test_b=1, size=(48, 48))
    bundle_root = tmp_path / "bundle"
    overrides = {"bundle_root": bundle_root, "dataset_dir": data, "epochs": 2, "dist_backend": "gloo", **TINY_RUN}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "monai.bundle", "run", "--config_file"]
    cmd += [str(configs(GLAS_BUNDLE, "train.json", "demo.json", "multi_gpu_train.json"))] + cli_args(overrides)
    env = subprocess_env()
    env["CUDA_VISIBLE_DEVICES"] = ""  # the gloo/CPU path even where a GPU exists
    proc = subprocess.run(cmd, cwd=str(GLAS_BUNDLE), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]  # torchrun: every rank exited 0

    models = bundle_root / "models"
    assert sorted(p.name for p in models.iterdir()) == ["checkpoint_epoch=2.pt", "model.pt", "model.pt.record.json"]
    state = torch.load(models / "checkpoint_epoch=2.pt", map_location="cpu", weights_only=True)
    # the DDP wrapper is not saved: keys load into the plain network
    assert not any(k.startswith("module.") for k in state["model"])
    # 8 training items minus the validation share, split over 2 ranks in batches of 4: one iteration per epoch
    assert state["trainer"]["iteration"] == 2 * state["trainer"]["epoch_length"]
    assert "Engine run finished" in proc.stdout + proc.stderr
