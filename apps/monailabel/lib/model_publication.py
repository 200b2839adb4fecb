"""Publish the best model of a finished training run where MONAI Label's infer task loads it."""

from __future__ import annotations

import os
from pathlib import Path

from monai_masksup.handlers.atomic_save import write_atomically
from monai_masksup.handlers.best_model_record import record_path

__all__ = ["publish_best_model"]


def publish_best_model(ckpt_dir: str | os.PathLike, models_dir: str | os.PathLike, filename: str = "model.pt") -> Path:
    """
    Copy the best model ``ckpt_dir/filename`` (and its record, when there is one) into ``models_dir``.

    A training run keeps its interval checkpoints in its own ``ckpt_dir`` (MONAI Label offers every
    ``models/*.pt`` as a model file to choose); only the best model is published. Each file is replaced
    atomically, so the infer task, which reloads ``models/model.pt`` when its modification time changes, never
    reads a half-written file; the record follows the model, as ``TrainingCheckpoint`` writes them.

    Args:
        ckpt_dir: the run's checkpoint folder.
        models_dir: the bundle's ``models/`` folder (created when missing).
        filename: the best model's file name in both folders.

    Returns:
        the published model's path.

    Raises:
        FileNotFoundError: the run wrote no best model (no validation finished); the message names the file.
    """
    source = Path(ckpt_dir) / filename
    if not source.is_file():
        raise FileNotFoundError(
            f"training wrote no best model {source}: no validation round finished (too few labelled images for "
            "a validation split, or the run stopped early)"
        )
    target_dir = Path(models_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / filename
    write_atomically(target, lambda file: file.write(source.read_bytes()))
    record = record_path(source)
    if record.is_file():
        write_atomically(record_path(target), lambda file: file.write(record.read_bytes()))
    return target
