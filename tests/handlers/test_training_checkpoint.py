"""TrainingCheckpoint: atomic interval checkpoints, the best model's record, and resuming as if never interrupted."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from monai_masksup.handlers import atomic_save
from monai_masksup.handlers.best_model_record import record_path
from monai_masksup.handlers.training_checkpoint import TrainingCheckpoint, interval_checkpoints
from tests.handlers.tiny_run import EPOCH_LENGTH, tiny_run

EPOCHS = 4
#: a kill in the middle of epoch 3: epochs 1 and 2 are checkpointed, two iterations of epoch 3 are lost
INTERRUPT = 2 * EPOCH_LENGTH + 2


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _load(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("uninterrupted"), EPOCHS)


def test_interval_checkpoints_are_listed_newest_first(tmp_path):
    assert interval_checkpoints(tmp_path / "missing") == []
    for name in ("checkpoint_epoch=9.pt", "checkpoint_epoch=10.pt", "model.pt", "checkpoint_epoch=x.pt",
                 ".checkpoint_epoch=11.pt.123.0123abcd.tmp"):
        (tmp_path / name).write_bytes(b"")
    assert [(n, p.name) for n, p in interval_checkpoints(tmp_path)] == [
        (10, "checkpoint_epoch=10.pt"), (9, "checkpoint_epoch=9.pt")
    ]


def test_a_run_leaves_one_interval_checkpoint_the_best_model_and_its_record(uninterrupted, tmp_path):
    folder = uninterrupted["checkpoint"].ckpt_dir
    assert _names(folder) == ["checkpoint_epoch=4.pt", "model.pt", "model.pt.record.json"]
    state = _load(folder / "checkpoint_epoch=4.pt")
    assert set(state) == {"model", "optimizer", "trainer", "best_model_record", "random_states", "extra_state"}
    assert state["trainer"]["iteration"] == EPOCHS * EPOCH_LENGTH
    # the best model is a plain state dict, and its record names the epoch of the lowest validation MSE
    history = uninterrupted["val_history"]
    best_epoch = min(range(EPOCHS), key=lambda i: history[i]) + 1
    record = json.loads(record_path(folder / "model.pt").read_text())
    assert record["epoch"] == best_epoch and record["score"] == pytest.approx(history[best_epoch - 1])
    assert record["metric_name"] == "val_mse"
    assert set(_load(folder / "model.pt")) == {"weight", "bias"}
    assert state["best_model_record"]["_saved"][0][0] == pytest.approx(history[best_epoch - 1])


def test_resumed_run_repeats_the_uninterrupted_run(uninterrupted, tmp_path):
    first = tiny_run(tmp_path, EPOCHS, interrupt_at_iteration=INTERRUPT)
    assert first["trainer"].state.iteration == INTERRUPT
    assert _names(tmp_path) == ["checkpoint_epoch=2.pt", "model.pt", "model.pt.record.json"]

    second = tiny_run(tmp_path, EPOCHS, resume=True)
    assert second["checkpoint"].resumed_from.name == "checkpoint_epoch=2.pt"
    # the resumed run validates epochs 3 and 4 only, with the metrics of the uninterrupted run
    assert first["val_history"][:2] + second["val_history"] == uninterrupted["val_history"]
    for resumed, reference in zip(second["network"].parameters(), uninterrupted["network"].parameters()):
        assert torch.equal(resumed, reference)
    # the checkpoint resumed from is removed once the newer one is complete
    assert _names(tmp_path) == ["checkpoint_epoch=4.pt", "model.pt", "model.pt.record.json"]
    assert (tmp_path / "model.pt").read_bytes() == (uninterrupted["checkpoint"].model_path).read_bytes()


@pytest.mark.slow
def test_resumed_run_with_loader_workers_repeats_the_uninterrupted_run(tmp_path):
    """Workers (not persistent) are seeded per epoch from the restored global generator: the same holds."""
    reference = tiny_run(tmp_path / "uninterrupted", EPOCHS, num_workers=2)
    first = tiny_run(tmp_path / "models", EPOCHS, interrupt_at_iteration=INTERRUPT, num_workers=2)
    second = tiny_run(tmp_path / "models", EPOCHS, resume=True, num_workers=2)
    assert first["val_history"][:2] + second["val_history"] == reference["val_history"]
    assert torch.equal(second["network"].weight, reference["network"].weight)


@pytest.mark.parametrize("dropped", ["random_states", "extra_state"])
def test_resume_without_saved_random_states_differs(uninterrupted, tmp_path, dropped):
    """The control of the test above: the saved random states are what makes the runs agree."""
    tiny_run(tmp_path, EPOCHS, interrupt_at_iteration=INTERRUPT)
    path = tmp_path / "checkpoint_epoch=2.pt"
    state = _load(path)
    del state[dropped]
    torch.save(state, path)
    with pytest.warns(UserWarning, match="random states" if dropped == "random_states" else "input_noise"):
        second = tiny_run(tmp_path, EPOCHS, resume=True)
    assert not torch.equal(second["network"].weight, uninterrupted["network"].weight)


def test_extra_state_of_the_engine_is_saved_and_restored(tmp_path):
    first = tiny_run(tmp_path, 1)
    saved = _load(tmp_path / "checkpoint_epoch=1.pt")["extra_state"]
    assert set(saved) == {"input_noise"}
    assert torch.equal(saved["input_noise"]["state"], first["trainer"].noise.get_state())
    # a resumed run with nothing left to train only restores: its generator is where the first one stopped
    second = tiny_run(tmp_path, 1, resume=True)
    assert torch.equal(second["trainer"].noise.get_state(), first["trainer"].noise.get_state())


def test_kill_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    torch_save = torch.save
    seen_during_write = []

    def dies_half_way(obj, file):
        if obj.get("trainer", {}).get("iteration") != 3 * EPOCH_LENGTH:
            return torch_save(obj, file)
        seen_during_write.append(_names(tmp_path))
        file.write(b"PK\x03\x04" + b"\0" * 1000)  # the start of a zip archive, as a killed torch.save leaves
        raise KeyboardInterrupt("killed half way through the epoch-3 checkpoint")

    monkeypatch.setattr(atomic_save.torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        tiny_run(tmp_path, EPOCHS)
    monkeypatch.setattr(atomic_save.torch, "save", torch_save)
    # the epoch-2 checkpoint was still there while epoch 3 was written, and nothing took the final name
    assert "checkpoint_epoch=2.pt" in seen_during_write[0]
    assert [n for n, _ in interval_checkpoints(tmp_path)] == [2]
    assert _load(tmp_path / "checkpoint_epoch=2.pt")["trainer"]["iteration"] == 2 * EPOCH_LENGTH

    resumed = tiny_run(tmp_path, EPOCHS, resume=True)
    assert resumed["checkpoint"].resumed_from.name == "checkpoint_epoch=2.pt"
    assert resumed["trainer"].state.epoch == EPOCHS


def test_temporaries_left_by_a_kill_are_removed_at_the_next_start(tmp_path):
    tiny_run(tmp_path, 2, interrupt_at_iteration=EPOCH_LENGTH + 1)
    stale = tmp_path / ".checkpoint_epoch=2.pt.4242.0123abcd.tmp"
    stale.write_bytes(b"PK\x03\x04 half")
    tiny_run(tmp_path, 2, resume=True)
    assert _names(tmp_path) == ["checkpoint_epoch=2.pt", "model.pt", "model.pt.record.json"]


def test_damaged_newest_checkpoint_is_skipped_with_a_warning(tmp_path, caplog):
    tiny_run(tmp_path, 2, n_saved=2)
    newest = tmp_path / "checkpoint_epoch=2.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated, as by a kill on a file system without rename
    with caplog.at_level(logging.WARNING):
        resumed = tiny_run(tmp_path, 3, resume=True)
    assert f"skipping damaged checkpoint '{newest}'" in caplog.text
    assert resumed["checkpoint"].resumed_from.name == "checkpoint_epoch=1.pt"
    assert resumed["val_history"] and len(resumed["val_history"]) == 2  # epochs 2 and 3
    assert [n for n, _ in interval_checkpoints(tmp_path)] == [3]


def _claims(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "Got new best metric" in r.getMessage()]


def test_resumed_run_neither_replaces_nor_claims_to_beat_a_better_best_model(tmp_path, caplog):
    tiny_run(tmp_path, EPOCHS, interrupt_at_iteration=INTERRUPT)
    path = tmp_path / "checkpoint_epoch=2.pt"
    state = _load(path)
    # an earlier stretch of the run had found a perfect model: nothing the resumed run finds may replace it
    state["best_model_record"] = {"_saved": [(0.0, "model.pt")], "metric_name": "val_mse", "epoch": 1}
    torch.save(state, path)
    best = (tmp_path / "model.pt").read_bytes()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        resumed = tiny_run(tmp_path, EPOCHS, resume=True)
    assert (tmp_path / "model.pt").read_bytes() == best
    assert _claims(caplog) == []
    assert resumed["validator"].state.best_metric == 0.0
    assert _load(tmp_path / f"checkpoint_epoch={EPOCHS}.pt")["best_model_record"]["_saved"][0][0] == 0.0


def test_new_best_claims_and_saved_best_models_agree(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        run = tiny_run(tmp_path, EPOCHS)
    history = run["val_history"]
    improving = [i + 1 for i, v in enumerate(history) if v < min(history[:i], default=float("inf"))]
    assert len(_claims(caplog)) == len(improving)
    assert json.loads(record_path(tmp_path / "model.pt").read_text())["epoch"] == improving[-1]


def test_resume_without_interval_checkpoint_keeps_the_best_models_record(tmp_path, caplog):
    tiny_run(tmp_path, 2)
    for _, path in interval_checkpoints(tmp_path):
        path.unlink()  # a fragment deleted by hand: only model.pt and its record are left
    record_file = record_path(tmp_path / "model.pt")
    record = json.loads(record_file.read_text())
    record["score"] = 0.0  # the record names this very model.pt (its SHA-256), so it is restored as it says
    record_file.write_text(json.dumps(record))
    best = (tmp_path / "model.pt").read_bytes()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        resumed = tiny_run(tmp_path, 2, resume=True)
    assert "training starts from scratch" in caplog.text and "only replaced by a better model" in caplog.text
    assert resumed["val_history"] and len(resumed["val_history"]) == 2
    assert (tmp_path / "model.pt").read_bytes() == best
    assert _claims(caplog) == []


@pytest.mark.parametrize("damage", ["no record", "replaced model"])
def test_resume_without_interval_checkpoint_refuses_a_best_model_of_unknown_score(tmp_path, damage):
    tiny_run(tmp_path, 1)
    (tmp_path / "checkpoint_epoch=1.pt").unlink()
    if damage == "no record":
        record_path(tmp_path / "model.pt").unlink()  # a model.pt of an earlier version of the bundles
        why = "model.pt.record.json' .* is missing"
    else:
        torch.save({"weight": torch.zeros(1, 1, 3, 3), "bias": torch.zeros(1)}, tmp_path / "model.pt")
        why = "'model.pt' is not the file that 'model.pt.record.json' describes"
    best = (tmp_path / "model.pt").read_bytes()
    with pytest.raises(FileExistsError, match=why) as raised:
        tiny_run(tmp_path, 1, resume=True)
    for option in ("--resume true", "--overwrite true", "--bundle_root"):
        assert option in str(raised.value)
    assert (tmp_path / "model.pt").read_bytes() == best
    # the user's way on: start over and allow model.pt to be replaced
    tiny_run(tmp_path, 1, resume=True, overwrite=True)
    assert (tmp_path / "checkpoint_epoch=1.pt").is_file()


def test_resume_into_an_empty_folder_starts_from_scratch(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        run = tiny_run(tmp_path / "models", 1, resume=True)
    assert "training starts from scratch" in caplog.text
    assert run["checkpoint"].resumed_from is None and run["trainer"].state.epoch == 1


def test_fresh_run_refuses_an_earlier_runs_folder_before_training(tmp_path):
    tiny_run(tmp_path, 1)
    with pytest.raises(FileExistsError, match="--resume true.*--overwrite true"):
        TrainingCheckpoint(tmp_path, torch.nn.Linear(1, 1))
    run = tiny_run(tmp_path, 2, overwrite=True)
    assert run["trainer"].state.epoch == 2 and [n for n, _ in interval_checkpoints(tmp_path)] == [2]


def test_resumed_run_purges_the_replayed_tensorboard_steps(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    logs = tmp_path / "tensorboard"
    writer = SummaryWriter(log_dir=str(logs))
    tiny_run(tmp_path / "models", EPOCHS, interrupt_at_iteration=INTERRUPT, summary_writer=writer)
    writer.close()
    (first_file,) = logs.iterdir()
    # a restarted process writes a later file; the rename keeps that order within one test second
    first_file.rename(logs / "events.out.tfevents.0000000001.killed")
    killed = EventAccumulator(str(logs))
    killed.Reload()
    assert [e.step for e in killed.Scalars("Loss")] == list(range(1, INTERRUPT + 1))

    writer = SummaryWriter(log_dir=str(logs))
    tiny_run(tmp_path / "models", EPOCHS, resume=True, summary_writer=writer)
    writer.close()
    merged = EventAccumulator(str(logs))
    merged.Reload()
    assert [e.step for e in merged.Scalars("Loss")] == list(range(1, EPOCHS * EPOCH_LENGTH + 1))


def test_checkpoint_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="save_interval"):
        TrainingCheckpoint(tmp_path, torch.nn.Linear(1, 1), save_interval=0)
    with pytest.raises(ValueError, match="save_dict"):
        TrainingCheckpoint(tmp_path, torch.nn.Linear(1, 1), save_dict={"trainer": torch.nn.Linear(1, 1)})
    with pytest.raises(ValueError, match="resume"):
        TrainingCheckpoint(tmp_path, torch.nn.Linear(1, 1), resume="maybe")
    assert TrainingCheckpoint(tmp_path, torch.nn.Linear(1, 1), resume="false").resume is False


def test_only_damaged_checkpoints_and_a_best_model_without_record_are_refused_at_start(tmp_path):
    tiny_run(tmp_path, 1)
    record_path(tmp_path / "model.pt").unlink()
    newest = tmp_path / "checkpoint_epoch=1.pt"
    newest.write_bytes(newest.read_bytes()[:1000])
    best = (tmp_path / "model.pt").read_bytes()
    with pytest.raises(FileExistsError, match="no interval checkpoint 'checkpoint_epoch=N.pt' that loads"):
        tiny_run(tmp_path, 2, resume=True)
    assert (tmp_path / "model.pt").read_bytes() == best
