"""The bundles' checkpoint handlers: resuming from the newest checkpoint, the best-model record, the overwrite guard.

The other handler tests live in ``tests/handlers/``."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine, Events
from monai.handlers import CheckpointSaver

from monai_masksup.handlers.checkpoint_resume import (
    CheckpointOverwriteGuard,
    KeyMetricRecord,
    ResumeFromLatestCheckpoint,
    find_latest_checkpoint,
)


def test_latest_checkpoint_is_the_highest_epoch_number(tmp_path):
    assert find_latest_checkpoint(tmp_path / "missing") is None
    for name in ("checkpoint_epoch=9.pt", "checkpoint_epoch=10.pt", "model.pt", "checkpoint_epoch=x.pt"):
        (tmp_path / name).write_bytes(b"")
    assert find_latest_checkpoint(tmp_path).name == "checkpoint_epoch=10.pt"


def _saver(folder):
    net = torch.nn.Linear(1, 1)
    return net, CheckpointSaver(
        save_dir=str(folder), save_dict={"model": net}, save_key_metric=True, key_metric_name="m",
        key_metric_filename="model.pt",
    )


def _validate(saver, score: float) -> None:
    engine = Engine(lambda e, b: None)
    engine.state.metrics = {"m": score}
    saver.attach(engine)
    engine.fire_event(Events.EPOCH_COMPLETED)


def test_restored_key_metric_record_keeps_the_better_best_model(tmp_path):
    _, first = _saver(tmp_path)
    _validate(first, 0.8)
    record = KeyMetricRecord(first).state_dict()
    best = (tmp_path / "model.pt").read_bytes()

    net, second = _saver(tmp_path)  # a resumed run: new saver, record restored
    with torch.no_grad():
        net.weight.fill_(5.0)
    KeyMetricRecord(second).load_state_dict(record)
    _validate(second, 0.5)
    assert (tmp_path / "model.pt").read_bytes() == best
    _validate(second, 0.9)
    assert torch.load(tmp_path / "model.pt", weights_only=True)["weight"].item() == 5.0


def test_key_metric_record_needs_a_key_metric_saver(tmp_path):
    plain = CheckpointSaver(save_dir=str(tmp_path), save_dict={"model": torch.nn.Linear(1, 1)}, save_interval=1)
    with pytest.raises(ValueError, match="save_key_metric=True"):
        KeyMetricRecord(plain)


def test_resume_restores_epoch_and_weights(tmp_path):
    net = torch.nn.Linear(2, 1)
    trainer = Engine(lambda e, b: None)
    saver = CheckpointSaver(save_dir=str(tmp_path), save_dict={"model": net, "trainer": trainer}, save_interval=1)
    saver.attach(trainer)
    trainer.run([0, 0], max_epochs=3)
    trained = net.weight.detach().clone()

    fresh_net = torch.nn.Linear(2, 1)
    fresh = Engine(lambda e, b: None)
    epochs_run = []
    fresh.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs_run.append(e.state.epoch))
    loader = ResumeFromLatestCheckpoint(tmp_path, {"model": fresh_net, "trainer": fresh})
    loader.attach(fresh)
    fresh.run([0, 0], max_epochs=5)
    assert loader.resumed_from.name == "checkpoint_epoch=3.pt"
    assert epochs_run == [4, 5]
    assert torch.equal(fresh_net.weight, trained)


def test_disabled_resume_does_nothing(tmp_path):
    (tmp_path / "checkpoint_epoch=1.pt").write_bytes(b"not a checkpoint")
    engine = Engine(lambda e, b: None)
    loader = ResumeFromLatestCheckpoint(tmp_path, {"trainer": engine}, enabled=False)
    loader.attach(engine)
    engine.run([0], max_epochs=1)
    assert loader.resumed_from is None


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


def test_command_line_words_switch_resume_and_overwrite(tmp_path):
    (tmp_path / "checkpoint_epoch=1.pt").write_bytes(b"earlier run")
    # `monai.bundle run --resume false` passes the string "false", which must not switch resuming on
    assert ResumeFromLatestCheckpoint(tmp_path, {"x": torch.nn.Linear(1, 1)}, enabled="false").enabled is False
    assert ResumeFromLatestCheckpoint(tmp_path, {"x": torch.nn.Linear(1, 1)}, enabled="True").enabled is True
    with pytest.raises(FileExistsError):
        CheckpointOverwriteGuard(tmp_path, resume="false", overwrite="False").check()
    CheckpointOverwriteGuard(tmp_path, resume="false", overwrite="true").check()
    with pytest.raises(ValueError, match="overwrite"):
        CheckpointOverwriteGuard(tmp_path, overwrite="maybe")
