"""CheckpointOverwriteGuard: a fresh run does not replace an earlier run's checkpoints unless told to."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine

from monai_masksup.handlers.checkpoint_overwrite_guard import CheckpointOverwriteGuard
from monai_masksup.handlers.training_checkpoint import TrainingCheckpoint


def _fresh_trainer() -> Engine:
    return Engine(lambda e, b: None)


def test_fresh_run_refuses_to_replace_an_earlier_runs_checkpoints(tmp_path):
    (tmp_path / "checkpoint_epoch=8.pt").write_bytes(b"earlier run")
    (tmp_path / "model.pt").write_bytes(b"earlier best")
    with pytest.raises(FileExistsError, match=r"checkpoint_epoch=8\.pt, model\.pt.*--resume true.*--overwrite true"):
        CheckpointOverwriteGuard(tmp_path).check()
    with pytest.raises(FileExistsError, match="model.pt"):
        CheckpointOverwriteGuard(tmp_path).attach(_fresh_trainer())
    assert (tmp_path / "checkpoint_epoch=8.pt").read_bytes() == b"earlier run"
    assert (tmp_path / "model.pt").read_bytes() == b"earlier best"


def test_guard_allows_resuming_and_an_empty_folder(tmp_path):
    CheckpointOverwriteGuard(tmp_path / "missing").check()
    (tmp_path / "checkpoint_epoch=3.pt").write_bytes(b"x")
    engine = _fresh_trainer()
    CheckpointOverwriteGuard(tmp_path, resume=True).attach(engine)
    engine.run([0], max_epochs=1)
    assert (tmp_path / "checkpoint_epoch=3.pt").is_file()


def test_overwrite_removes_earlier_interval_checkpoints_only_once_training_starts(tmp_path):
    (tmp_path / "checkpoint_epoch=8.pt").write_bytes(b"earlier run")
    (tmp_path / "model.pt").write_bytes(b"earlier best")
    engine = _fresh_trainer()
    CheckpointOverwriteGuard(tmp_path, overwrite=True).attach(engine)
    assert (tmp_path / "checkpoint_epoch=8.pt").is_file()  # a run that fails while being set up removes nothing
    engine.run([0], max_epochs=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # replaced later by the best-model saver


def test_overwrite_keeps_files_that_only_contain_the_checkpoint_name(tmp_path):
    (tmp_path / "checkpoint_epoch=8.pt").write_bytes(b"earlier run")
    (tmp_path / "my_backup_checkpoint_epoch=3.pt").write_bytes(b"user's backup")
    guard = CheckpointOverwriteGuard(tmp_path, overwrite=True)
    assert [p.name for p in guard.existing_files()] == ["checkpoint_epoch=8.pt"]
    engine = _fresh_trainer()
    guard.attach(engine)
    engine.run([0], max_epochs=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_backup_checkpoint_epoch=3.pt"]


def test_command_line_words_switch_resume_and_overwrite(tmp_path):
    (tmp_path / "checkpoint_epoch=1.pt").write_bytes(b"earlier run")
    # `monai.bundle run --resume false` passes the string "false", which must not switch resuming on
    net = torch.nn.Linear(1, 1)
    assert TrainingCheckpoint(tmp_path, net, resume="false", overwrite="true").resume is False
    assert TrainingCheckpoint(tmp_path, net, resume="True").resume is True
    with pytest.raises(FileExistsError):
        CheckpointOverwriteGuard(tmp_path, resume="false", overwrite="False").check()
    CheckpointOverwriteGuard(tmp_path, resume="false", overwrite="true").check()
    with pytest.raises(ValueError, match="overwrite"):
        CheckpointOverwriteGuard(tmp_path, overwrite="maybe")
