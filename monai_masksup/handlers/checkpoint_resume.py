"""Resuming an interrupted training run from its newest epoch checkpoint, keeping the best model's record."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monai.handlers import CheckpointLoader
from monai.utils import IgniteInfo, min_version, optional_import

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["find_latest_checkpoint", "KeyMetricRecord", "ResumeFromLatestCheckpoint"]


def find_latest_checkpoint(ckpt_dir: str | os.PathLike, prefix: str = "checkpoint_epoch=") -> Path | None:
    """
    Return the checkpoint of the highest epoch in ``ckpt_dir``, as written by ``monai.handlers.CheckpointSaver``
    with ``save_interval`` (files ``<prefix><N>.pt``), or ``None`` when there is none.

    Args:
        ckpt_dir: folder of the checkpoints; a missing folder holds no checkpoint.
        prefix: file-name part before the epoch (or iteration) number.

    Returns:
        the path of the newest checkpoint, or ``None``.
    """
    folder = Path(ckpt_dir)
    if not folder.is_dir():
        return None
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.pt$")
    found = [(int(m.group(1)), path) for path in folder.iterdir() if (m := pattern.search(path.name))]
    return max(found)[1] if found else None


class KeyMetricRecord:
    """
    The record of a key-metric ``monai.handlers.CheckpointSaver`` (the best score so far and its file) as an
    object with ``state_dict`` / ``load_state_dict``, so that it can be saved in the training checkpoint next to
    the network, optimizer and trainer, and restored with them.

    Without it, a resumed run starts the best-model saver with an empty record and its first validation
    replaces an earlier, better ``model.pt``. (``CheckpointSaver(key_metric_save_state=True)`` would store the
    record inside ``model.pt`` instead, which then no longer loads into a network with ``strict=True``.)

    Args:
        saver: a ``CheckpointSaver`` created with ``save_key_metric=True``.

    Raises:
        ValueError: when ``saver`` does not save on a key metric.
    """

    def __init__(self, saver: Any) -> None:
        if getattr(saver, "_key_metric_checkpoint", None) is None:
            raise ValueError("KeyMetricRecord: `saver` must be a CheckpointSaver created with save_key_metric=True.")
        self.saver = saver

    def state_dict(self) -> dict:
        """The saver's record: ``{"_saved": [(score, filename), ...]}`` (ignite ``Checkpoint`` state)."""
        return self.saver._key_metric_checkpoint.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the saver's record, so that only a better model replaces the best model file."""
        self.saver.load_state_dict(state_dict)


class ResumeFromLatestCheckpoint:
    """
    At ``Events.STARTED``, load the newest ``checkpoint_epoch=N.pt`` of ``ckpt_dir`` into ``load_dict`` (network,
    optimizer, trainer, best-model record, ...) with MONAI's ``CheckpointLoader``, so that training continues at
    epoch ``N + 1`` and stops at the trainer's own ``max_epochs``. Put a :class:`KeyMetricRecord` of the
    validator's best-model saver in both the saver's ``save_dict`` and ``load_dict``, so that a resumed run only
    replaces ``model.pt`` with a better model.

    With ``enabled=False`` the handler does nothing, so a config can switch resuming on with ``--resume true``.
    When ``ckpt_dir`` holds no checkpoint, training starts from scratch with a warning (a preemptible job can
    always pass ``--resume true``).

    Args:
        ckpt_dir: folder of the interval checkpoints.
        load_dict: objects to restore, keyed as in the saver's ``save_dict``; with ``"trainer"`` the epoch and
            iteration counters are restored.
        enabled: whether to resume at all.
        prefix: file-name part before the epoch number of the interval checkpoints.
        map_location: ``torch.load`` map location.
        strict: strict ``load_state_dict`` for the network.
        name: logger name; ``None`` uses the engine's logger.

    Raises:
        ValueError: when ``load_dict`` is empty.
    """

    def __init__(
        self,
        ckpt_dir: str | os.PathLike,
        load_dict: dict[str, Any],
        enabled: bool = True,
        prefix: str = "checkpoint_epoch=",
        map_location: Any = None,
        strict: bool = True,
        name: str | None = None,
    ) -> None:
        if not load_dict:
            raise ValueError("ResumeFromLatestCheckpoint: `load_dict` must name at least one object to restore.")
        self.ckpt_dir = Path(ckpt_dir)
        self.load_dict = load_dict
        self.enabled = bool(enabled)
        self.prefix = prefix
        self.map_location = map_location
        self.strict = strict
        self._name = name
        self.logger = logging.getLogger(name)
        self.resumed_from: Path | None = None

    def attach(self, engine: Engine) -> None:
        """Register the loader on ``engine``'s ``STARTED`` event when resuming is enabled."""
        if self._name is None:
            self.logger = engine.logger
        if self.enabled:
            engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        """Restore the newest checkpoint; see the class docstring."""
        latest = find_latest_checkpoint(self.ckpt_dir, self.prefix)
        if latest is None:
            self.logger.warning(
                f"resume: no '{self.prefix}N.pt' checkpoint in '{self.ckpt_dir}'; training starts from scratch."
            )
            return
        CheckpointLoader(
            load_path=str(latest), load_dict=self.load_dict, map_location=self.map_location, strict=self.strict
        )(engine)
        self.resumed_from = latest
        self.logger.info(f"resume: restored '{latest}', training continues after epoch {engine.state.epoch}.")
