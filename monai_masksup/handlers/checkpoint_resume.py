"""Resuming an interrupted training run from its newest epoch checkpoint, keeping the best model's record, and
protecting the checkpoints of an earlier run from a fresh one."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monai.handlers import CheckpointLoader
from monai.utils import IgniteInfo, min_version, optional_import

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

from monai_masksup.config_flags import parse_flag

__all__ = ["find_latest_checkpoint", "KeyMetricRecord", "ResumeFromLatestCheckpoint", "CheckpointOverwriteGuard"]


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
        enabled: whether to resume at all; the strings ``"true"`` / ``"false"`` of a command line are read as
            words (``--resume false`` does not resume).
        prefix: file-name part before the epoch number of the interval checkpoints.
        map_location: ``torch.load`` map location.
        strict: strict ``load_state_dict`` for the network.
        name: logger name; ``None`` uses the engine's logger.

    Raises:
        ValueError: when ``load_dict`` is empty or ``enabled`` is a string other than true/false.
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
        self.enabled = parse_flag(enabled, "enabled")
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


class CheckpointOverwriteGuard:
    """
    Keep a fresh (not resumed) training run from silently replacing what an earlier run left in ``ckpt_dir``.

    Without it, a second ``monai.bundle run`` into the same folder replaces the earlier best ``model.pt`` at its
    first validation, and leaves the earlier ``checkpoint_epoch=N.pt`` beside its own, so that a later
    ``--resume true`` would continue the *earlier* run (the highest epoch wins). :meth:`check` therefore stops a
    fresh run before any data is loaded when the folder already holds such files, and names the three ways
    on: resume the earlier run, allow overwriting, or use another folder. With ``overwrite=True`` the earlier
    interval checkpoints are removed once training has started (so a run that fails while it is being set up
    removes nothing), and the earlier ``model.pt`` is replaced at the first validation, as in MONAI.

    Args:
        ckpt_dir: folder of the interval checkpoints and the best model.
        resume: whether this run resumes the earlier one (then nothing is checked or removed); like
            ``overwrite``, a bool or the command-line words ``"true"`` / ``"false"``.
        overwrite: whether a fresh run may replace the earlier run's files.
        prefix: file-name part before the epoch number of the interval checkpoints.
        protected_files: further file names of the earlier run that a fresh run would replace (the best
            model file of the key-metric saver).

    Raises:
        ValueError: when ``resume`` or ``overwrite`` is a string other than true/false.
    """

    def __init__(
        self,
        ckpt_dir: str | os.PathLike,
        resume: bool = False,
        overwrite: bool = False,
        prefix: str = "checkpoint_epoch=",
        protected_files: Sequence[str] = ("model.pt",),
    ) -> None:
        self.ckpt_dir = Path(ckpt_dir)
        self.resume = parse_flag(resume, "resume")
        self.overwrite = parse_flag(overwrite, "overwrite")
        self.prefix = prefix
        self.protected_files = tuple(protected_files)
        self.logger = logging.getLogger(__name__)

    def _interval_checkpoints(self) -> list[Path]:
        if not self.ckpt_dir.is_dir():
            return []
        pattern = re.compile(re.escape(self.prefix) + r"\d+\.pt$")
        return sorted(path for path in self.ckpt_dir.iterdir() if pattern.search(path.name))

    def existing_files(self) -> list[Path]:
        """The earlier run's files in ``ckpt_dir`` that a fresh run would replace or make ambiguous."""
        protected = [self.ckpt_dir / name for name in self.protected_files if (self.ckpt_dir / name).is_file()]
        return self._interval_checkpoints() + protected

    def check(self) -> None:
        """
        Stop a fresh run that would replace an earlier run's files; call it before the data are loaded.

        Raises:
            FileExistsError: when ``resume`` and ``overwrite`` are both ``False`` and ``ckpt_dir`` holds an
                interval checkpoint or one of ``protected_files``.
        """
        if self.resume or self.overwrite:
            return
        existing = self.existing_files()
        if existing:
            names = ", ".join(path.name for path in existing)
            raise FileExistsError(
                f"checkpoint folder '{os.path.abspath(self.ckpt_dir)}' already holds {names} from an earlier run, and a fresh run "
                "would replace them. Continue that run with '--resume true', replace its files with "
                "'--overwrite true', or write elsewhere with '--bundle_root <folder>' (or '--ckpt_dir <folder>')."
            )

    def attach(self, engine: Engine) -> None:
        """Check now; with ``overwrite`` remove the earlier interval checkpoints when ``engine`` starts."""
        self.check()
        if self.overwrite and not self.resume:
            engine.add_event_handler(Events.STARTED, self._remove_earlier_checkpoints)

    def _remove_earlier_checkpoints(self, engine: Engine) -> None:
        stale = self._interval_checkpoints()
        for path in stale:
            # every DDP rank runs this: another rank may have removed the file already
            path.unlink(missing_ok=True)
        if stale:
            self.logger.warning(
                f"overwrite: removed the earlier run's {', '.join(p.name for p in stale)} from '{self.ckpt_dir}'."
            )
