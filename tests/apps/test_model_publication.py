"""Publishing a training run's best model into the bundle's models/ folder."""

from __future__ import annotations

import pytest

from tests.apps.conftest import app_module

publication = app_module("model_publication")


def test_best_model_and_record_are_copied_byte_for_byte(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.pt").write_bytes(b"weights")
    (run / "model.pt.record.json").write_text('{"score": 0.5}')
    (run / "checkpoint_epoch=3.pt").write_bytes(b"interval")
    models = tmp_path / "bundle" / "models"
    published = publication.publish_best_model(run, models)
    assert published == models / "model.pt"
    assert published.read_bytes() == b"weights"
    assert (models / "model.pt.record.json").read_text() == '{"score": 0.5}'
    # interval checkpoints stay with the run: MONAI Label offers every models/*.pt as a model file
    assert sorted(p.name for p in models.iterdir()) == ["model.pt", "model.pt.record.json"]


def test_published_model_replaces_the_served_one(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.pt").write_bytes(b"new")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.pt").write_bytes(b"old")
    publication.publish_best_model(tmp_path / "run", tmp_path / "models")
    assert (tmp_path / "models" / "model.pt").read_bytes() == b"new"


def test_run_without_best_model_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"run[/\\]model.pt: no validation round finished"):
        publication.publish_best_model(tmp_path / "run", tmp_path / "models")
    assert not (tmp_path / "models" / "model.pt").exists()
