"""A real SIGKILL of a training process in the middle of writing a checkpoint, and the resume after it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from monai_masksup.handlers.training_checkpoint import interval_checkpoints
from tests.conftest import PROJECT_ROOT
from tests.handlers.tiny_run import tiny_run

# the training of tests/handlers/tiny_run.py, with every write of a checkpoint slowed down, so that the kill
# lands inside one; the files are otherwise written exactly as in a bundle run
TRAIN = """
import sys, time
import torch
from pathlib import Path
from monai_masksup.handlers import atomic_save
from tests.handlers.tiny_run import tiny_run

write = atomic_save._HashingWriter.write

def slow_write(self, data):
    time.sleep(0.02)
    return write(self, data)

atomic_save._HashingWriter.write = slow_write
torch.set_num_threads(2)  # as tests/conftest.py sets it for the in-process runs compared with
tiny_run(Path(sys.argv[1]), 1000)
"""


def _writing_epoch(folder) -> int | None:
    for path in folder.iterdir() if folder.is_dir() else []:
        if path.name.startswith(".checkpoint_epoch=") and path.name.endswith(".tmp"):
            return int(path.name.split("=")[1].split(".")[0])
    return None


@pytest.mark.slow
def test_sigkill_while_writing_a_checkpoint_resumes_from_the_previous_one(tmp_path):
    folder = tmp_path / "models"
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", TRAIN, str(folder)], env=env, cwd=str(PROJECT_ROOT))
    deadline = time.monotonic() + 240
    try:
        while (epoch := _writing_epoch(folder)) is None or epoch < 3:
            assert proc.poll() is None, f"training ended (rc={proc.returncode}) before its third checkpoint"
            assert time.monotonic() < deadline, "no third checkpoint being written after 240 s"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    # killed inside the write of epoch `epoch`: its fragment has a temporary name, the previous checkpoint is whole
    assert _writing_epoch(folder) == epoch
    (saved, newest), *_ = interval_checkpoints(folder)
    assert saved == epoch - 1
    state = torch.load(newest, map_location="cpu", weights_only=True)
    assert state["trainer"]["iteration"] == saved * state["trainer"]["epoch_length"]

    resumed = tiny_run(folder, saved + 2, resume=True)
    assert resumed["checkpoint"].resumed_from == newest
    left = sorted(p.name for p in folder.iterdir())
    assert left == [f"checkpoint_epoch={saved + 2}.pt", "model.pt", "model.pt.record.json"]
    # and it ends where a run that was never killed ends
    uninterrupted = tiny_run(tmp_path / "uninterrupted", saved + 2)
    assert torch.equal(resumed["network"].weight, uninterrupted["network"].weight)
    assert resumed["val_history"] == uninterrupted["val_history"][saved:]
