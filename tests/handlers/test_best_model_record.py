"""BestModelRecord: the best model's record inside interval checkpoints and beside the model file."""

from __future__ import annotations

import json

import torch

from monai_masksup.handlers.atomic_save import save_atomically
from monai_masksup.handlers.best_model_record import BestModelRecord, record_path


def test_record_of_an_earlier_bundle_version_checkpoint_is_read():
    # MONAI CheckpointSaver's key-metric record, as the bundles saved it before: ignite's Checkpoint state
    legacy = {"_saved": [(0.5, "model_key_metric=0.5000.pt"), (0.7, "model_key_metric=0.7000.pt")]}
    assert BestModelRecord.from_checkpoint(legacy) == BestModelRecord(None, 0.7, 0)
    assert BestModelRecord.from_checkpoint({"_saved": []}) == BestModelRecord()
    assert BestModelRecord.from_checkpoint(None).score is None


def test_record_round_trips_through_a_checkpoint():
    record = BestModelRecord("val_iou", 0.359, 12)
    assert BestModelRecord.from_checkpoint(record.to_checkpoint()) == record
    assert record.to_checkpoint()["_saved"] == [(0.359, "model.pt")]


def test_record_beside_the_model_names_that_exact_file(tmp_path):
    model = tmp_path / "model.pt"
    digest = save_atomically({"w": torch.ones(2)}, model)
    BestModelRecord("val_iou", 0.359, 12).write_beside(model, digest)
    assert record_path(model).name == "model.pt.record.json"
    assert json.loads(record_path(model).read_text())["model_sha256"] == digest
    assert BestModelRecord.read_beside(model) == (BestModelRecord("val_iou", 0.359, 12), "")

    torch.save({"w": torch.zeros(2)}, model)  # replaced after the record was written
    record, why = BestModelRecord.read_beside(model)
    assert record is None and "is not the file" in why
    record_path(model).write_text("{not json")
    assert "cannot be read" in BestModelRecord.read_beside(model)[1]
    record_path(model).unlink()
    assert "is missing" in BestModelRecord.read_beside(model)[1]
    assert "there is no 'other.pt'" in BestModelRecord.read_beside(tmp_path / "other.pt")[1]
