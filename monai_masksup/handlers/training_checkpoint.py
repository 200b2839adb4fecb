"""The whole checkpointing of a training run in one handler: interval checkpoints, the best model, and resuming."""

from __future__ import annotations

import logging
import operator
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from monai.utils import IgniteInfo, min_version, optional_import

from monai_masksup.config_flags import parse_flag
from monai_masksup.engines.extra_state import ExtraStateOwner
from monai_masksup.handlers.atomic_save import remove_stale_temporaries, save_atomically
from monai_masksup.handlers.best_model_record import BestModelRecord, record_path
from monai_masksup.handlers.checkpoint_overwrite_guard import CheckpointOverwriteGuard
from monai_masksup.handlers.interval_checkpoints import interval_checkpoints
from monai_masksup.handlers.random_states import RandomStates

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
    from ignite.handlers import Checkpoint
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
    Checkpoint, _ = optional_import("ignite.handlers", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Checkpoint")

__all__ = ["TrainingCheckpoint", "interval_checkpoints"]


def _writes_files() -> bool:
    # under DDP every rank holds the same state; rank 0 alone writes it
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _unwrapped(obj: Any) -> Any:
    # DistributedDataParallel / DataParallel: save the plain network, whose keys have no "module." prefix
    if isinstance(obj, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
        return obj.module
    return obj


class TrainingCheckpoint:
    """
    Save, protect and resume a training run, so that a kill at any moment (``kill -9``, a preempted job) costs at
    most the epoch in progress, and a resumed run continues as the uninterrupted run would have.

    Attach it to the trainer and its validator with one call, ``attach(trainer, validator)``; it then

    - writes ``<prefix><N>.pt`` (network, optimizer, ``save_dict``, trainer counters, best-model record, every
      random state (:class:`~monai_masksup.handlers.random_states.RandomStates`), the engine's
      ``extra_state()`` when it is an :class:`~monai_masksup.engines.extra_state.ExtraStateOwner`, and AMP's
      ``GradScaler``) every ``save_interval`` epochs and at the last epoch, atomically
      (:func:`~monai_masksup.handlers.atomic_save.save_atomically`), and deletes older ones only once the new one
      is complete, keeping the newest ``n_saved``;
    - writes the best model ``key_metric_filename`` (a plain network ``state_dict``, for MONAI's
      ``CheckpointLoader``) atomically whenever the validator reports a new best key metric, with its record
      beside it (:class:`~monai_masksup.handlers.best_model_record.BestModelRecord`); the validator's own
      "Got new best metric" decision (its ``metric_cmp_fn``) is the one that saves, so the log and the files
      agree;
    - with ``resume``: restores the newest interval checkpoint that loads (a damaged one is skipped with a
      warning naming it), restores the validator's best metric so that only a better model replaces the best
      model file and no "new best" is claimed for a worse one, and marks the TensorBoard steps the run will replay
      as purged (``summary_writer``). Without any loadable interval checkpoint, training starts from scratch but
      keeps the best model's record when the record beside it matches the file; when it does not, the run
      stops with a message naming the options rather than replace a possibly better model;
    - without ``resume``: stops a run into a folder that holds an earlier run's files unless ``overwrite``
      (:class:`~monai_masksup.handlers.checkpoint_overwrite_guard.CheckpointOverwriteGuard`), checked when this
      handler is created, i.e. before the data are loaded when the config creates it first.

    It replaces MONAI's ``CheckpointSaver`` (interval and key-metric) and ``CheckpointLoader`` for training:
    ignite's ``Checkpoint`` removes the old file before it writes the new one, and neither saves random states.
    On a CPU, with the same number of threads, a resumed run gives the same weights and metrics as the uninterrupted
    one, with or without (non-persistent) data loader workers; see
    :class:`~monai_masksup.handlers.random_states.RandomStates` for what is not covered.
    Under DDP only rank 0 writes; every rank resumes from the same files. The random states of rank 0 are saved,
    and restored on every rank, so a resumed DDP run is not guaranteed to repeat the uninterrupted one.

    Args:
        ckpt_dir: folder of the interval checkpoints and the best model.
        network: the trained network (DDP/DataParallel wrappers are saved unwrapped).
        optimizer: its optimizer.
        resume: whether to continue the run saved in ``ckpt_dir``; a bool or the command-line words true/false.
        overwrite: whether a fresh run may replace an earlier run's files (bool or words).
        save_interval: epochs between interval checkpoints.
        n_saved: interval checkpoints kept, newest first.
        key_metric_filename: file name of the best model in ``ckpt_dir``.
        save_dict: further objects with ``state_dict`` / ``load_state_dict`` to save and restore, by name
            (a learning-rate scheduler).
        summary_writer: the run's ``SummaryWriter``; on resume the iterations after the checkpoint are marked
            purged in it (as ``SummaryWriter(purge_step=...)`` would), so TensorBoard does not show the replayed
            steps twice. Values logged per epoch (validation metrics) of the epoch a kill interrupted after its
            validation can still appear twice at that epoch.
        map_location: ``torch.load`` map location on resume.
        strict: strict ``load_state_dict`` of the network on resume.
        prefix: file-name part before the epoch number of the interval checkpoints.

    Raises:
        FileExistsError: when a fresh run would replace an earlier run's files (see the guard), or when
            ``resume`` finds no interval checkpoint but a best model file without a matching record.
        ValueError: for a flag that is not a truthy/falsy word, or ``save_interval`` / ``n_saved`` below 1.
    """

    def __init__(
        self,
        ckpt_dir: str | os.PathLike,
        network: torch.nn.Module,
        optimizer: Any = None,
        resume: bool | str = False,
        overwrite: bool | str = False,
        save_interval: int = 1,
        n_saved: int = 1,
        key_metric_filename: str = "model.pt",
        save_dict: Mapping[str, Any] | None = None,
        summary_writer: Any = None,
        map_location: Any = None,
        strict: bool = True,
        prefix: str = "checkpoint_epoch=",
    ) -> None:
        if int(save_interval) < 1 or int(n_saved) < 1:
            raise ValueError(
                f"TrainingCheckpoint: `save_interval` and `n_saved` must be at least 1, got {save_interval}, {n_saved}."
            )
        self.ckpt_dir = Path(ckpt_dir)
        self.network = network
        self.optimizer = optimizer
        self.resume = parse_flag(resume, "resume")
        self.overwrite = parse_flag(overwrite, "overwrite")
        self.save_interval = int(save_interval)
        self.n_saved = int(n_saved)
        self.model_path = self.ckpt_dir / key_metric_filename
        self.save_dict = dict(save_dict or {})
        reserved = {"model", "optimizer", "trainer", "best_model_record", "random_states", "extra_state", "grad_scaler"}
        if reserved & set(self.save_dict):
            raise ValueError(f"TrainingCheckpoint: `save_dict` may not use the names {sorted(reserved)}.")
        self.summary_writer = summary_writer
        self.map_location = map_location
        self.strict = strict
        self.prefix = prefix
        self.guard = CheckpointOverwriteGuard(
            self.ckpt_dir,
            resume=self.resume,
            overwrite=self.overwrite,
            prefix=prefix,
            protected_files=(key_metric_filename, record_path(key_metric_filename).name),
        )
        self.record = BestModelRecord()
        self.resumed_from: Path | None = None
        self.trainer: Engine | None = None
        self.validator: Engine | None = None
        self.logger = logging.getLogger(__name__)
        self.guard.check()
        if self.resume and not self.overwrite and not interval_checkpoints(self.ckpt_dir, prefix):
            # fail before the data are loaded; a folder whose checkpoints all turn out damaged is refused at start
            self._restorable_record()

    def attach(self, trainer: Engine, validator: Engine | None = None) -> None:
        """
        Register the handler on ``trainer`` (resume at ``STARTED``, interval checkpoint at ``EPOCH_COMPLETED``)
        and on ``validator`` (best model at its ``EPOCH_COMPLETED``). Attach it after the trainer's other handlers,
        so that the saved random states are those the next epoch starts from (the validation run by
        ``ValidationHandler`` included).

        Args:
            trainer: the training engine.
            validator: the engine whose key metric selects the best model (a MONAI ``Evaluator``); ``None``
                writes no best model.
        """
        self.trainer, self.validator = trainer, validator
        self.logger = trainer.logger
        trainer.add_event_handler(Events.STARTED, self._start)
        self.guard.attach(trainer)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, self.save_checkpoint)
        if validator is not None:
            validator.add_event_handler(Events.EPOCH_COMPLETED, self.save_best_model)

    # ----------------------------------------------------------------------------------------------- saving
    def _training_state(self, engine: Engine) -> dict[str, Any]:
        state: dict[str, Any] = {"model": _unwrapped(self.network).state_dict()}
        if self.optimizer is not None:
            state["optimizer"] = self.optimizer.state_dict()
        state.update({name: _unwrapped(obj).state_dict() for name, obj in self.save_dict.items()})
        state["trainer"] = engine.state_dict()
        state["best_model_record"] = self.record.to_checkpoint(self.model_path.name)
        state["random_states"] = RandomStates(engine.state.dataloader).state_dict()
        extra = engine.extra_state() if isinstance(engine, ExtraStateOwner) else {}
        state["extra_state"] = {name: obj.state_dict() for name, obj in extra.items()}
        scaler = getattr(engine, "scaler", None)
        if scaler is not None and hasattr(scaler, "state_dict"):
            state["grad_scaler"] = scaler.state_dict()
        return state

    def save_checkpoint(self, engine: Engine) -> None:
        """Write ``<prefix><epoch>.pt`` atomically, then remove the interval checkpoints beyond ``n_saved``."""
        epoch = engine.state.epoch
        if epoch % self.save_interval and epoch != engine.state.max_epochs:
            return
        if not _writes_files():
            return
        path = self.ckpt_dir / f"{self.prefix}{epoch}.pt"
        save_atomically(self._training_state(engine), path)
        # only now that the new file is complete; older epochs beyond n_saved, and any later (damaged, skipped) one
        existing = interval_checkpoints(self.ckpt_dir, self.prefix)
        kept = [path] + [p for n, p in existing if n < epoch][: self.n_saved - 1]
        for _, old in existing:
            if old not in kept:
                old.unlink(missing_ok=True)

    def save_best_model(self, validator: Engine) -> None:
        """When the validator has just found a new best key metric, write the best model and its record."""
        state = validator.state
        if state.best_metric_epoch != state.epoch or state.best_metric_epoch < 0:
            return
        score, epoch = float(state.best_metric), int(state.best_metric_epoch)
        if (score, epoch) == (self.record.score, self.record.epoch):
            return  # the restored best of this very epoch (a resumed run), not a new one
        self.record = BestModelRecord(metric_name=state.key_metric_name, score=score, epoch=epoch)
        if _writes_files():
            digest = save_atomically(_unwrapped(self.network).state_dict(), self.model_path)
            self.record.write_beside(self.model_path, digest)

    # ---------------------------------------------------------------------------------------------- resuming
    def _start(self, engine: Engine) -> None:
        if _writes_files():
            stale = remove_stale_temporaries(self.ckpt_dir)
            if stale:
                self.logger.warning(
                    f"checkpoint: removed {', '.join(p.name for p in stale)}, left in '{self.ckpt_dir}' by a run "
                    "killed while writing."
                )
        if self.resume:
            self._resume(engine)

    def _refusal(self, why: str) -> FileExistsError:
        name = self.model_path.name
        return FileExistsError(
            f"resume: '{os.path.abspath(self.ckpt_dir)}' holds no interval checkpoint '{self.prefix}N.pt' that "
            f"loads, and {why}, so the score of '{name}' is unknown: training from scratch would replace it with "
            f"its first validated model, however good '{name}' is. Continue the earlier run by putting a "
            f"'{self.prefix}N.pt' of it back and rerunning with '--resume true'; or start over and let '{name}' be "
            "replaced with '--resume true --overwrite true' (or '--resume false --overwrite true'); or keep it and "
            "train elsewhere with '--bundle_root <folder>' (or '--ckpt_dir <folder>')."
        )

    def _restorable_record(self, beside: tuple[BestModelRecord | None, str] | None = None) -> BestModelRecord:
        """
        The record beside the best model (``beside``: as read by ``BestModelRecord.read_beside``, read now when
        ``None``); raises the refusal when a best model exists without a valid one and ``overwrite`` is off.
        """
        record, why = BestModelRecord.read_beside(self.model_path) if beside is None else beside
        if record is not None:
            return record
        if self.model_path.is_file() and not self.overwrite:
            raise self._refusal(why)
        return BestModelRecord()

    def _newest_loadable(self) -> tuple[Path, dict[str, Any]] | None:
        for _, path in interval_checkpoints(self.ckpt_dir, self.prefix):
            try:
                checkpoint = torch.load(path, map_location=self.map_location, weights_only=True)
                if not isinstance(checkpoint, dict) or "trainer" not in checkpoint or "model" not in checkpoint:
                    raise ValueError("it holds no 'model' and 'trainer' state")
            except Exception as e:  # a truncated or otherwise damaged file: the older one may still load
                self.logger.warning(
                    f"resume: skipping damaged checkpoint '{path}' ({type(e).__name__}: {str(e)[:200]})."
                )
                continue
            return path, checkpoint
        return None

    def _better(self, a: BestModelRecord, b: BestModelRecord) -> BestModelRecord:
        if a.score is None or b.score is None:
            return a if b.score is None else b
        compare = getattr(self.validator, "metric_cmp_fn", operator.gt)
        return b if compare(b.score, a.score) else a

    def _resume(self, engine: Engine) -> None:
        found = self._newest_loadable()
        beside, why = BestModelRecord.read_beside(self.model_path)
        if found is None:
            record = self._restorable_record((beside, why))
            if record.score is not None:
                self.logger.warning(
                    f"resume: no interval checkpoint '{self.prefix}N.pt' that loads in '{self.ckpt_dir}'; training "
                    f"starts from scratch, and '{self.model_path.name}' ({record.metric_name} {record.score:.4f} at "
                    f"epoch {record.epoch}) is only replaced by a better model."
                )
            else:
                self.logger.warning(
                    f"resume: no '{self.prefix}N.pt' checkpoint in '{self.ckpt_dir}'; training starts from scratch."
                )
            self._restore_best(record)
            return

        path, checkpoint = found
        self._restore(engine, path, checkpoint)
        record = BestModelRecord.from_checkpoint(checkpoint.get("best_model_record"))
        if beside is not None:
            # a kill after the best model was written but before this epoch's checkpoint: the file is newer
            record = self._better(record, beside)
        elif self.model_path.is_file() and record.score is not None:
            self.logger.warning(f"resume: {why}; the best-model record of '{path.name}' is kept.")
        self._restore_best(record)
        self.resumed_from = path
        if self.summary_writer is not None and _writes_files():
            self._purge_replayed_steps(engine.state.iteration + 1)
        self.logger.info(f"resume: restored '{path}', training continues after epoch {engine.state.epoch}.")

    def _restore(self, engine: Engine, path: Path, checkpoint: dict[str, Any]) -> None:
        to_load: dict[str, Any] = {"model": self.network, "trainer": engine}
        if self.optimizer is not None:
            to_load["optimizer"] = self.optimizer
        to_load.update(self.save_dict)
        missing = sorted(set(to_load) - set(checkpoint))
        if missing:
            raise ValueError(
                f"resume: '{path}' holds no state for {', '.join(missing)}: it was not written by this training "
                "configuration; resume with the config files it was trained with, or start over with "
                "'--overwrite true'."
            )
        max_epochs = engine.state.max_epochs
        Checkpoint.load_objects(to_load=to_load, checkpoint=checkpoint, strict=self.strict)
        if max_epochs is not None and engine.state.epoch > max_epochs:
            raise ValueError(
                f"resume: '{path}' holds epoch {engine.state.epoch}, more than this run's {max_epochs} epochs; "
                f"pass '--epochs' of at least {engine.state.epoch} to continue it."
            )
        engine.state.max_epochs = max_epochs  # the configured count wins, as in MONAI's CheckpointLoader

        if "random_states" in checkpoint:
            RandomStates(engine.state.dataloader).load_state_dict(checkpoint["random_states"])
        else:
            warnings.warn(f"resume: '{path.name}' holds no random states; the resumed run differs from the original.")
        extra = engine.extra_state() if isinstance(engine, ExtraStateOwner) else {}
        saved_extra = checkpoint.get("extra_state", {})
        for name, obj in extra.items():
            if name in saved_extra:
                obj.load_state_dict(saved_extra[name])
            else:
                warnings.warn(f"resume: '{path.name}' holds no extra state '{name}' of the engine; it starts afresh.")
        scaler = getattr(engine, "scaler", None)
        if scaler is not None and "grad_scaler" in checkpoint:
            scaler.load_state_dict(checkpoint["grad_scaler"])

    def _restore_best(self, record: BestModelRecord) -> None:
        self.record = record
        if self.validator is None or record.score is None:
            return
        name = self.validator.state.key_metric_name
        if record.metric_name is not None and name is not None and record.metric_name != name:
            self.logger.warning(
                f"resume: the best model was chosen by '{record.metric_name}', this run's key metric is '{name}'."
            )
        # MONAI's evaluator logs "Got new best metric" and keeps these; the next validation is compared with them
        self.validator.state.best_metric = record.score
        self.validator.state.best_metric_epoch = record.epoch

    def _purge_replayed_steps(self, first_step: int) -> None:
        # what SummaryWriter(purge_step=...) writes: TensorBoard drops every earlier event at step >= first_step
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog

        file_writer = getattr(self.summary_writer, "file_writer", None)
        if file_writer is None:
            self.logger.warning("resume: the summary writer has no open event file; replayed steps are not purged.")
            return
        file_writer.add_event(Event(step=first_step, session_log=SessionLog(status=SessionLog.START)))
        self.summary_writer.flush()
