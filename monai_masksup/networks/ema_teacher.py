"""An exponential-moving-average (mean) teacher of a student network."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = ["EMATeacher", "EMA_TEACHER_STATE", "TEACHER_MODES", "unwrap_network"]

TEACHER_MODES = ("train", "eval")

#: the name under which :meth:`EMATeacher.attach` registers the teacher as an engine's extra state
EMA_TEACHER_STATE = "ema_teacher"


def unwrap_network(network: nn.Module) -> nn.Module:
    """
    Return the module inside ``DistributedDataParallel`` / ``DataParallel`` wrappers and ``torch.compile``'s
    ``OptimizedModule``, whose state-dict names are the plain network's.
    """
    while True:
        if isinstance(network, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            network = network.module
        elif hasattr(network, "_orig_mod") and isinstance(network._orig_mod, nn.Module):
            network = network._orig_mod
        else:
            return network


class EMATeacher(nn.Module):
    """
    A mean teacher: a copy of the student whose weights follow the student's as an exponential moving average,

        ``θ_t ← α θ_t + (1 − α) θ_s``

    after every real optimizer step of the student, over the parameters and (``update_buffers=True``) the
    floating-point buffers such as BatchNorm running statistics. Integer buffers (``num_batches_tracked``) are
    never averaged: the teacher keeps its own counter, as the reference implementation of the CutMix/Cutout mean
    teacher (French et al., "Semi-supervised semantic segmentation needs strong, varied perturbations",
    BMVC 2020; Tarvainen & Valpola, "Mean teachers are better role models", NeurIPS 2017) does.

    The teacher is used by the semi-supervised trainer, by Mean-Taught and (``alpha=0.999, update_buffers=False``)
    as MaskContrast's momentum key encoder.

    Why not ``torch.optim.swa_utils.AveragedModel`` or Ignite's ``EMAHandler``: ``AveragedModel`` with
    ``use_buffers=True`` copies ``num_batches_tracked`` on its first update and then averages it as an integer
    (teacher 100, student 300 gives 102), and without ``use_buffers`` it leaves the BatchNorm statistics alone.
    Ignite's ``EMAHandler`` with ``handle_buffers="update"`` copies integer buffers from the student (the
    reference keeps the teacher's own counter), keeps the EMA model in eval mode unless buffers are left to its
    forwards (``"ema_train"``), and updates on an Ignite event, none of which tells a real optimizer step from a
    gradient-accumulation iteration or a float16 step that the ``GradScaler`` skipped. This class averages every
    floating-point entry by name, leaves integer buffers alone, and updates on
    :class:`~monai_masksup.engines.multi_pass_trainer.TrainerEvents` ``OPTIMIZER_STEPPED`` only (:meth:`attach`).

    The teacher's module mode is an explicit option and is kept: ``"train"`` (the reference: BatchNorm uses the
    batch statistics and updates the teacher's own running statistics during its forwards, dropout is active) or
    ``"eval"``. :meth:`forward` restores the mode first, so an evaluator that validated with :attr:`teacher` (and
    set it to eval) does not change how it trains.

    ``state_dict()`` / ``load_state_dict()`` are ``nn.Module``'s: the teacher's state under ``"teacher."``
    (``alpha`` and the mode are constructor arguments). Registered as an engine's extra state by :meth:`attach`,
    it is saved and restored by :class:`~monai_masksup.handlers.TrainingCheckpoint`.

    Distributed: the student may be wrapped in ``DistributedDataParallel`` (or compiled); the teacher is a copy of
    the plain module on every rank. The student's weights are the same on every rank after each step, so the
    averaged weights are too; in ``"train"`` mode the teacher's own BatchNorm running statistics follow each
    rank's batches (they only matter for an eval-mode teacher, e.g. validation).

    Args:
        student: the network being trained (possibly wrapped); the teacher starts as a deep copy of it, without
            gradients, integer buffers included (the reference's teacher is a network built apart, whose own
            counter its initial copy leaves alone: :meth:`copy_student` is that copy). The student is kept (not as a submodule, so it is not in the state dict) for
            :meth:`update` without argument.
        alpha: the EMA decay α in [0, 1]; 0.99 as the mean teacher, 0.999 as MoCo/MaskContrast.
        update_buffers: average the floating-point buffers too (the reference); ``False`` averages parameters
            only and leaves every buffer of the teacher to its own forwards (MaskContrast's key encoder).
        mode: ``"train"`` (default, the reference) or ``"eval"``: the teacher's module mode.

    Raises:
        TypeError: when ``student`` is not an ``nn.Module``.
        ValueError: when ``alpha`` is outside [0, 1] or ``mode`` is unknown.
    """

    def __init__(self, student: nn.Module, alpha: float = 0.99, update_buffers: bool = True, mode: str = "train"):
        super().__init__()
        if not isinstance(student, nn.Module):
            raise TypeError(f"EMATeacher: `student` must be a torch.nn.Module, got {type(student).__name__}.")
        alpha = float(alpha)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"EMATeacher: `alpha` must be in [0, 1], got {alpha}.")
        if mode not in TEACHER_MODES:
            raise ValueError(f"EMATeacher: `mode` must be one of {TEACHER_MODES}, got {mode!r}.")
        plain = unwrap_network(student)
        self.alpha = alpha
        self.update_buffers = bool(update_buffers)
        self.mode = mode
        self.teacher = copy.deepcopy(plain)
        self.teacher.requires_grad_(False)
        self.teacher.train(mode == "train")
        # a tuple keeps the student out of the submodules, hence out of state_dict() and .to()
        self._student = (plain,)

    @property
    def student(self) -> nn.Module:
        """The (unwrapped) student given at construction."""
        return self._student[0]

    def _averaged_entries(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """The tensors that the EMA averages, by state-dict name: parameters and, optionally, float buffers."""
        entries = {name: p for name, p in module.named_parameters()}
        if self.update_buffers:
            entries.update({name: b for name, b in module.named_buffers() if b.is_floating_point()})
        return entries

    def _paired(self, student: nn.Module | None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The teacher's averaged tensors and the student's tensors of the same names, in the same order."""
        plain = self.student if student is None else unwrap_network(student)
        # the teacher's tensors are re-read: load_state_dict and .to() may have replaced them
        teacher_entries = self._averaged_entries(self.teacher)
        student_entries = self._averaged_entries(plain)
        if teacher_entries.keys() != student_entries.keys():
            missing = sorted(teacher_entries.keys() - student_entries.keys())
            extra = sorted(student_entries.keys() - teacher_entries.keys())
            raise ValueError(
                "EMATeacher: the student's parameters/buffers do not match the teacher's "
                f"(missing in the student: {missing[:5]}, not in the teacher: {extra[:5]})."
            )
        names = list(teacher_entries)
        teacher_tensors = [teacher_entries[n] for n in names]
        student_tensors = [student_entries[n].detach() for n in names]
        for name, t, s in zip(names, teacher_tensors, student_tensors):
            if t.shape != s.shape:
                raise ValueError(
                    f"EMATeacher: {name!r} has shape {tuple(s.shape)} in the student, {tuple(t.shape)} in the teacher."
                )
        return teacher_tensors, student_tensors

    @torch.no_grad()
    def update(self, student: nn.Module | None = None) -> None:
        """
        One EMA step: ``θ_t ← α θ_t + (1 − α) θ_s`` on every parameter and (``update_buffers``) floating-point
        buffer, vectorised with ``torch._foreach_*``; integer buffers are untouched.

        Args:
            student: the student to average in (possibly wrapped); ``None`` uses the one given at construction.

        Raises:
            ValueError: when the student's parameters/buffers differ from the teacher's in names or shapes.
        """
        teacher, student_tensors = self._paired(student)
        student_tensors = [
            s.to(device=t.device, dtype=t.dtype) if (s.device, s.dtype) != (t.device, t.dtype) else s
            for t, s in zip(teacher, student_tensors)
        ]
        torch._foreach_mul_(teacher, self.alpha)
        torch._foreach_add_(teacher, student_tensors, alpha=1.0 - self.alpha)

    @torch.no_grad()
    def copy_student(self, student: nn.Module | None = None) -> None:
        """
        Set the teacher's averaged tensors to the student's (``α = 0``), integer buffers untouched: the
        reference's initialisation of a separately built teacher, e.g. after loading the student's weights.

        Args:
            student: as in :meth:`update`.
        """
        teacher, student_tensors = self._paired(student)
        for t, s in zip(teacher, student_tensors):
            t.copy_(s)

    def attach(self, engine: Any) -> None:
        """
        Update the teacher after every real optimizer step of ``engine`` (its ``TrainerEvents.OPTIMIZER_STEPPED``,
        which does not fire on gradient-accumulation iterations nor when the float16 scaler skipped the step),
        from the student given at construction; and register the teacher as the engine's extra state
        ``"ema_teacher"`` when the engine takes extra state, so that checkpoints save and restore it.

        Args:
            engine: a :class:`~monai_masksup.engines.MultiPassTrainer` (or an Ignite engine that fires
                ``OPTIMIZER_STEPPED``).

        Raises:
            ValueError: when the engine has not registered ``OPTIMIZER_STEPPED`` (e.g. a plain
                ``SupervisedTrainer``, whose step signal cannot tell accumulation or skipped steps).
        """
        from monai_masksup.engines.multi_pass_trainer import TrainerEvents

        if not engine.has_registered_events(TrainerEvents.OPTIMIZER_STEPPED):
            raise ValueError(
                f"EMATeacher.attach: {type(engine).__name__} does not fire TrainerEvents.OPTIMIZER_STEPPED; use a "
                "monai_masksup MultiPassTrainer (or call update() after each real optimizer step)."
            )
        engine.add_event_handler(TrainerEvents.OPTIMIZER_STEPPED, lambda _: self.update())
        if hasattr(engine, "register_extra_state"):
            engine.register_extra_state(EMA_TEACHER_STATE, self)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The teacher's output on the arguments, without gradients, in the teacher's mode."""
        if self.teacher.training != (self.mode == "train"):
            self.teacher.train(self.mode == "train")
        with torch.no_grad():
            return self.teacher(*args, **kwargs)

    def train(self, mode: bool = True) -> EMATeacher:
        """Set this wrapper's flag only: the teacher keeps the mode chosen at construction."""
        self.training = mode
        return self

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, update_buffers={self.update_buffers}, mode={self.mode!r}"
