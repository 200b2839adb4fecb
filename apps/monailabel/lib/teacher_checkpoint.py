"""The mean teacher's and the student's weights of a semi-supervised training run, read from its checkpoints.

This module imports neither MONAI Label nor the app's other modules, so the test suite checks it in the project's
own environment.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from monai_masksup.handlers.interval_checkpoints import interval_checkpoints
from monai_masksup.networks.ema_teacher import EMA_TEACHER_STATE

__all__ = ["TeacherStudentWeights", "NoTeacherError", "find_teacher_student_weights"]

# EMATeacher's state dict holds the teacher network under this submodule name
_TEACHER_PREFIX = "teacher."


class NoTeacherError(FileNotFoundError):
    """No checkpoint of a semi-supervised run (one with an EMA teacher) was found where it was looked for."""


@dataclass(frozen=True)
class TeacherStudentWeights:
    """
    The two networks' weights of one interval checkpoint of a semi-supervised run.

    Args:
        teacher: the EMA teacher network's ``state_dict``.
        student: the student network's ``state_dict``.
        path: the checkpoint file.
        epoch: the epoch it was written after.
    """

    teacher: dict[str, torch.Tensor]
    student: dict[str, torch.Tensor]
    path: Path
    epoch: int


def find_teacher_student_weights(
    ckpt_dirs: Sequence[str | os.PathLike], prefix: str = "checkpoint_epoch=", map_location: str = "cpu"
) -> TeacherStudentWeights:
    """
    The newest interval checkpoint that holds a mean teacher, searched folder by folder.

    ``TrainingCheckpoint`` writes ``<prefix><N>.pt`` with the engine's extra state: a semi-supervised run's
    ``EMATeacher`` is in ``extra_state["ema_teacher"]`` (its ``state_dict``, the teacher network under
    ``"teacher."``). The student is ``"model"``, the trained network, unless the run validated with the teacher
    (``validate_with_teacher``): then ``"model"`` is the teacher and the student is in ``"student"``.
    A supervised run's checkpoints have no teacher: they are passed over, never used in its place.

    Args:
        ckpt_dirs: checkpoint folders, in the order to search them (a missing folder holds none).
        prefix: the interval checkpoints' file-name part before the epoch number.
        map_location: ``torch.load``'s map location.

    Returns:
        the teacher's and the student's weights of the first folder's newest checkpoint with a teacher.

    Raises:
        NoTeacherError: no folder holds an interval checkpoint with a teacher; the message names the folders
            and what they hold.
    """
    looked: list[str] = []
    for folder in ckpt_dirs:
        checkpoints = interval_checkpoints(folder, prefix)
        if not checkpoints:
            looked.append(f"{folder} (no {prefix}N.pt)")
            continue
        for epoch, path in checkpoints:
            state = torch.load(path, map_location=map_location, weights_only=True)
            teacher_state = state.get("extra_state", {}).get(EMA_TEACHER_STATE)
            if teacher_state is None:
                continue
            teacher = {
                name[len(_TEACHER_PREFIX) :]: tensor
                for name, tensor in teacher_state.items()
                if name.startswith(_TEACHER_PREFIX)
            }
            student = state["student"] if "student" in state else state["model"]
            return TeacherStudentWeights(teacher=teacher, student=student, path=Path(path), epoch=epoch)
        looked.append(f"{folder} ({', '.join(p.name for _, p in checkpoints)}: no '{EMA_TEACHER_STATE}', supervised)")
    raise NoTeacherError(
        "no mean-teacher weights: no interval checkpoint of a semi-supervised run in " + "; ".join(looked)
    )
