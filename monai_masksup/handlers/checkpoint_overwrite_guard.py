"""Protecting the checkpoints of an earlier training run from a fresh run into the same folder."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from monai.utils import IgniteInfo, min_version, optional_import

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

from monai_masksup.config_flags import parse_flag
from monai_masksup.handlers.interval_checkpoints import interval_checkpoints

__all__ = ["CheckpointOverwriteGuard"]


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
        return sorted(path for _, path in interval_checkpoints(self.ckpt_dir, self.prefix))

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
                f"checkpoint folder '{os.path.abspath(self.ckpt_dir)}' already holds {names} from an earlier run, "
                "and a fresh run would replace them. Continue that run with '--resume true', replace its files with "
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
