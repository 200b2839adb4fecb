"""The record of the best model file of a training run: which metric, its best value, the epoch, and the file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monai_masksup.handlers.atomic_save import file_sha256, write_atomically

__all__ = ["BestModelRecord", "record_path"]


def record_path(model_path: str | os.PathLike) -> Path:
    """The record file beside a best model file: ``models/model.pt`` -> ``models/model.pt.record.json``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + ".record.json")


@dataclass(frozen=True)
class BestModelRecord:
    """
    The best key-metric value of a training run and the epoch it was reached in; ``score=None`` before the first
    validation.

    It is saved twice: inside every interval checkpoint (key ``"best_model_record"``, in the layout of ignite's
    ``Checkpoint.state_dict()`` that MONAI's ``CheckpointSaver`` record had, ``{"_saved": [(score, filename)]}``
    plus ``"metric_name"`` and ``"epoch"``, so that checkpoints of earlier versions of the bundles still resume),
    and as a JSON file beside the best model (:func:`record_path`) with the SHA-256 of the model file. The model
    file itself stays a plain ``state_dict``, which MONAI's ``CheckpointLoader`` loads into the network with
    ``strict=True`` for evaluation and inference.

    Args:
        metric_name: the validator's key metric (``engine.state.key_metric_name``).
        score: its best value so far.
        epoch: the epoch of that value; ``0`` when unknown (a record of an earlier version).
    """

    metric_name: str | None = None
    score: float | None = None
    epoch: int = -1

    def to_checkpoint(self, filename: str = "model.pt") -> dict[str, Any]:
        """The record as stored in an interval checkpoint."""
        saved = [] if self.score is None else [(self.score, filename)]
        return {"_saved": saved, "metric_name": self.metric_name, "epoch": self.epoch}

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any] | None) -> BestModelRecord:
        """
        Read the record of an interval checkpoint; ``None`` or an empty ``_saved`` gives an empty record. Of
        several saved entries (ignite keeps them sorted by score) the last, best one counts.
        """
        if not state or not state.get("_saved"):
            return cls()
        score = float(state["_saved"][-1][0])
        epoch = state.get("epoch")
        return cls(metric_name=state.get("metric_name"), score=score, epoch=0 if epoch is None else int(epoch))

    def write_beside(self, model_path: str | os.PathLike, model_sha256: str) -> None:
        """Write the record next to ``model_path`` atomically, naming the model file by its SHA-256."""
        content = {
            "metric_name": self.metric_name,
            "score": self.score,
            "epoch": self.epoch,
            "model_file": Path(model_path).name,
            "model_sha256": model_sha256,
        }
        data = (json.dumps(content, indent=2) + "\n").encode()
        write_atomically(record_path(model_path), lambda file: file.write(data))

    @classmethod
    def read_beside(cls, model_path: str | os.PathLike) -> tuple[BestModelRecord | None, str]:
        """
        Read the record next to ``model_path`` and check that it belongs to the model file as it is now.

        Returns:
            ``(record, "")`` when the record names this exact file; otherwise ``(None, why)`` where ``why`` says
            what is missing or does not match (the model file was replaced after its record was written, e.g. by
            a kill between the two writes, or by hand).
        """
        model_path, path = Path(model_path), record_path(model_path)
        if not model_path.is_file():
            return None, f"there is no '{model_path.name}'"
        if not path.is_file():
            return None, f"'{path.name}' (written beside it by this version of the bundle) is missing"
        try:
            content = json.loads(path.read_text())
            record = cls(content["metric_name"], float(content["score"]), int(content["epoch"]))
            expected = content["model_sha256"]
        except (ValueError, KeyError, TypeError) as e:
            return None, f"'{path.name}' cannot be read ({type(e).__name__}: {e})"
        if file_sha256(model_path) != expected:
            return None, f"'{model_path.name}' is not the file that '{path.name}' describes"
        return record, ""
