"""Reading a semi-supervised run's mean teacher and student from its interval checkpoints (no MONAI Label needed)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from monai_masksup.networks import EMATeacher
from monai_masksup.networks.ema_teacher import EMA_TEACHER_STATE
from tests.apps.conftest import app_module

teacher_checkpoint = app_module("teacher_checkpoint")


def _network(value: float) -> nn.Module:
    network = nn.Sequential(nn.Conv2d(3, 1, 1), nn.BatchNorm2d(1))
    nn.init.constant_(network[0].weight, value)
    return network


def _checkpoint(path, student: nn.Module, teacher: nn.Module | None, validate_with_teacher: bool = False) -> None:
    """An interval checkpoint laid out as ``TrainingCheckpoint`` writes it (model, save_dict, extra_state)."""
    state: dict = {"model": student.state_dict(), "extra_state": {}}
    if teacher is not None:
        ema = EMATeacher(teacher, alpha=0.99)
        state["extra_state"][EMA_TEACHER_STATE] = ema.state_dict()
        if validate_with_teacher:
            state["model"], state["student"] = ema.teacher.state_dict(), student.state_dict()
    torch.save(state, path)


def _weight(state: dict) -> float:
    return float(state["0.weight"].flatten()[0])


def test_newest_checkpoint_with_a_teacher_gives_the_teacher_and_the_student(tmp_path):
    _checkpoint(tmp_path / "checkpoint_epoch=1.pt", _network(1.0), _network(2.0))
    _checkpoint(tmp_path / "checkpoint_epoch=3.pt", _network(3.0), _network(4.0))
    found = teacher_checkpoint.find_teacher_student_weights([tmp_path])
    assert (found.epoch, found.path.name) == (3, "checkpoint_epoch=3.pt")
    assert _weight(found.student) == 3.0 and _weight(found.teacher) == 4.0
    # the teacher's names are the plain network's: it loads into the bundle's network_def
    _network(0.0).load_state_dict(found.teacher)


def test_a_run_validated_with_the_teacher_keeps_the_student_under_its_own_name(tmp_path):
    _checkpoint(tmp_path / "checkpoint_epoch=2.pt", _network(5.0), _network(6.0), validate_with_teacher=True)
    found = teacher_checkpoint.find_teacher_student_weights([tmp_path])
    assert _weight(found.student) == 5.0 and _weight(found.teacher) == 6.0


def test_supervised_checkpoints_are_passed_over_for_the_next_folder(tmp_path):
    (tmp_path / "app").mkdir(), (tmp_path / "models").mkdir()
    _checkpoint(tmp_path / "app" / "checkpoint_epoch=9.pt", _network(1.0), None)
    _checkpoint(tmp_path / "models" / "checkpoint_epoch=1.pt", _network(7.0), _network(8.0))
    found = teacher_checkpoint.find_teacher_student_weights([tmp_path / "app", tmp_path / "models"])
    assert found.path.parent.name == "models" and _weight(found.teacher) == 8.0


def test_no_teacher_anywhere_is_an_error_naming_each_folder_and_what_it_holds(tmp_path):
    _checkpoint(tmp_path / "checkpoint_epoch=4.pt", _network(1.0), None)
    with pytest.raises(teacher_checkpoint.NoTeacherError) as error:
        teacher_checkpoint.find_teacher_student_weights([tmp_path, tmp_path / "missing"])
    message = str(error.value)
    assert "no mean-teacher weights" in message
    assert f"{tmp_path} (checkpoint_epoch=4.pt: no 'ema_teacher', supervised)" in message
    assert f"{tmp_path / 'missing'} (no checkpoint_epoch=N.pt)" in message
