"""A killed GLaS bundle training resumes from its last epoch checkpoint and keeps the better earlier best model."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch

from monai_masksup.data import make_synthetic_glas
from monai_masksup.handlers.training_checkpoint import interval_checkpoints
from tests.bundles.conftest import GLAS_BUNDLE, TINY_RUN, bundle_cli, bundle_run

EPOCHS = 6


def find_latest_checkpoint(models):
    """The newest interval checkpoint of ``models``, or ``None``."""
    found = interval_checkpoints(models)
    return found[0][1] if found else None


def _wait_for(path, proc, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.is_file():
        if proc.poll() is not None:
            raise AssertionError(f"training ended (rc={proc.returncode}) before writing {path.name}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {path.name} after {timeout} s")
        time.sleep(0.1)


@pytest.mark.slow
def test_resume_continues_from_saved_epoch_and_keeps_better_best_model(tmp_path):
    data = make_synthetic_glas(tmp_path / "data", n_train=8, n_test_a=1, n_test_b=1, size=(48, 48))
    bundle_root = tmp_path / "bundle"
    models = bundle_root / "models"
    overrides = {"bundle_root": bundle_root, "dataset_dir": data, "epochs": EPOCHS, **TINY_RUN}

    first = bundle_cli(GLAS_BUNDLE, ["train.json", "demo.json"], overrides, tmp_path / "first.log")
    _wait_for(models / "checkpoint_epoch=2.pt", first, timeout=240)
    time.sleep(0.3)  # let the epoch-2 file finish writing before the kill
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL

    latest = find_latest_checkpoint(models)
    assert latest is not None
    saved_epoch = int(latest.stem.split("=")[1])
    assert 2 <= saved_epoch < EPOCHS
    # pretend an earlier run had found an excellent model: a resumed run may never replace it with a worse one
    state = torch.load(latest, map_location="cpu", weights_only=True)
    state["best_model_record"] = {"_saved": [(2.0, "model_key_metric=2.0000.pt")]}
    torch.save(state, latest)
    best_before = (models / "model.pt").read_bytes()

    second = bundle_cli(GLAS_BUNDLE, ["train.json", "demo.json"], {**overrides, "resume": True}, tmp_path / "second.log")
    assert second.wait(timeout=300) == 0, (tmp_path / "second.log").read_text()[-3000:]
    log = (tmp_path / "second.log").read_text()

    assert f"training continues after epoch {saved_epoch}" in log
    # the resumed run trains only the epochs after the saved one, up to the configured count
    assert f"Epoch: {saved_epoch}/{EPOCHS}," not in log
    assert f"Epoch: {saved_epoch + 1}/{EPOCHS}," in log and f"Epoch: {EPOCHS}/{EPOCHS}," in log
    final = torch.load(models / f"checkpoint_epoch={EPOCHS}.pt", map_location="cpu", weights_only=True)
    assert final["trainer"]["iteration"] == EPOCHS * final["trainer"]["epoch_length"]
    # the resumed run keeps its own newest state; the file it resumed from is removed once a newer one is complete
    assert find_latest_checkpoint(models).name == f"checkpoint_epoch={EPOCHS}.pt"
    assert [n for n, _ in interval_checkpoints(models)] == [EPOCHS]
    assert (models / "model.pt").read_bytes() == best_before
    assert final["best_model_record"]["_saved"][0][0] == 2.0


@pytest.mark.slow
def test_resume_without_checkpoint_starts_from_scratch(tmp_path):
    data = make_synthetic_glas(tmp_path / "data", n_train=4, n_test_a=1, n_test_b=1, size=(48, 48))
    overrides = {"bundle_root": tmp_path / "bundle", "dataset_dir": data, "epochs": 1, "resume": True, **TINY_RUN}
    proc = bundle_cli(GLAS_BUNDLE, ["train.json", "demo.json"], overrides, tmp_path / "run.log")
    assert proc.wait(timeout=300) == 0, (tmp_path / "run.log").read_text()[-3000:]
    log = (tmp_path / "run.log").read_text()
    assert "training starts from scratch" in log and "Epoch: 1/1," in log
    assert (tmp_path / "bundle" / "models" / "checkpoint_epoch=1.pt").is_file()


@pytest.mark.slow
def test_resumed_bundle_run_repeats_the_uninterrupted_run(tmp_path):
    data = make_synthetic_glas(tmp_path / "data", n_train=8, n_test_a=1, n_test_b=1, size=(48, 48))
    common = {"dataset_dir": str(data), **TINY_RUN}
    bundle_run(GLAS_BUNDLE, ["train.json", "demo.json"], bundle_root=str(tmp_path / "once"), epochs=4, **common)
    interrupted = {"bundle_root": str(tmp_path / "twice"), **common}
    bundle_run(GLAS_BUNDLE, ["train.json", "demo.json"], epochs=2, **interrupted)  # stopped after epoch 2
    bundle_run(GLAS_BUNDLE, ["train.json", "demo.json"], epochs=4, resume=True, **interrupted)

    once = torch.load(tmp_path / "once" / "models" / "checkpoint_epoch=4.pt", map_location="cpu", weights_only=True)
    twice = torch.load(tmp_path / "twice" / "models" / "checkpoint_epoch=4.pt", map_location="cpu", weights_only=True)
    for key, value in once["model"].items():
        assert torch.equal(twice["model"][key], value), key
    assert twice["best_model_record"] == once["best_model_record"]
