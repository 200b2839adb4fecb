"""Tests of EMATeacher against the reference EMA vectors (reference README section 2e) and its engine wiring."""

from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Events
from torch import nn

from monai_masksup.engines import MultiPassTrainer
from monai_masksup.networks import EMATeacher
from monai_masksup.networks.ema_teacher import unwrap_network
from tests.conftest import load_reference

NBT = "1.num_batches_tracked"


def _reference_model() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 2, 1))


def _state(ref: dict, role: str) -> dict[str, torch.Tensor]:
    return {str(k): torch.from_numpy(ref[f"ema_{role}__{k}"].copy()) for k in ref["ema_state_keys"]}


def _assert_state(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        if value.is_floating_point():
            torch.testing.assert_close(actual[key], value, rtol=0, atol=1e-6, msg=key)
        else:
            assert actual[key].dtype == value.dtype and torch.equal(actual[key], value), key


def _teacher_state(ema: EMATeacher) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in ema.teacher.state_dict().items()}


def test_update_matches_reference_step_on_floats_and_leaves_num_batches_tracked():
    ref = load_reference("cutmix_consistency.npz")
    student = _reference_model()
    student.load_state_dict(_state(ref, "student"))
    ema = EMATeacher(student, alpha=float(ref["ema_alpha"]))
    ema.teacher.load_state_dict(_state(ref, "teacher_before"))
    ema.update()
    after = _teacher_state(ema)
    _assert_state(after, _state(ref, "teacher_after"))
    # BN running statistics are averaged (they differ from the teacher's before), the counter is the teacher's own
    assert not torch.allclose(after["1.running_mean"], _state(ref, "teacher_before")["1.running_mean"])
    assert int(after[NBT]) == 100


def test_copy_student_matches_reference_initialisation():
    ref = load_reference("cutmix_consistency.npz")
    student = _reference_model()
    student.load_state_dict(_state(ref, "init_student"))
    ema = EMATeacher(student)
    ema.teacher.load_state_dict(_state(ref, "init_teacher_before"))
    ema.copy_student()
    _assert_state(_teacher_state(ema), _state(ref, "init_teacher_after"))
    assert int(ema.teacher.state_dict()[NBT]) == 40


def test_construction_copies_the_student_without_gradients_and_shares_no_storage():
    student = _reference_model()
    ema = EMATeacher(student)
    for (name, s), t in zip(student.state_dict().items(), ema.teacher.state_dict().values()):
        assert torch.equal(s, t), name
        assert s.data_ptr() != t.data_ptr(), name
    assert all(not p.requires_grad for p in ema.teacher.parameters())
    assert all(p.requires_grad for p in student.parameters())


def test_update_buffers_false_averages_parameters_only():
    student = _reference_model()
    ema = EMATeacher(student, alpha=0.5, update_buffers=False)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(2.0)
        student[1].running_mean.fill_(4.0)
    before = _teacher_state(ema)
    ema.update()
    after = _teacher_state(ema)
    # 0.5 * t + 0.5 * (t + 2) = t + 1
    torch.testing.assert_close(after["0.weight"], before["0.weight"] + 1.0)
    torch.testing.assert_close(after["1.running_mean"], before["1.running_mean"])


def test_forward_keeps_the_chosen_mode_and_has_no_gradient():
    student = _reference_model()
    x = torch.randn(2, 2, 5, 5)
    for mode, training in (("train", True), ("eval", False)):
        ema = EMATeacher(student, mode=mode)
        ema.teacher.train(not training)  # as an evaluator validating with the teacher would
        ema.eval()
        out = ema(x)
        assert ema.teacher.training is training
        assert not out.requires_grad
    # train mode: the teacher's own BN statistics move in its forwards, as in the reference
    ema = EMATeacher(student, mode="train")
    before = ema.teacher[1].running_mean.clone()
    ema(x)
    assert not torch.equal(ema.teacher[1].running_mean, before)


def test_bad_arguments_are_refused_with_their_name():
    with pytest.raises(ValueError, match="alpha"):
        EMATeacher(_reference_model(), alpha=1.5)
    with pytest.raises(ValueError, match="mode"):
        EMATeacher(_reference_model(), mode="frozen")
    with pytest.raises(TypeError, match="student"):
        EMATeacher("net")
    ema = EMATeacher(_reference_model())
    with pytest.raises(ValueError, match="do not match"):
        ema.update(nn.Conv2d(2, 3, 3))


def test_state_dict_round_trip_restores_the_teacher():
    ref = load_reference("cutmix_consistency.npz")
    student = _reference_model()
    ema = EMATeacher(student)
    ema.teacher.load_state_dict(_state(ref, "teacher_before"))
    saved = {k: v.clone() for k, v in ema.state_dict().items()}
    assert set(saved) == {f"teacher.{k}" for k in ref["ema_state_keys"]}
    fresh = EMATeacher(_reference_model())
    fresh.load_state_dict(saved)
    _assert_state(_teacher_state(fresh), _state(ref, "teacher_before"))


def test_unwraps_a_data_parallel_student():
    student = _reference_model()
    wrapped = nn.DataParallel(student)
    ema = EMATeacher(wrapped, alpha=0.0)
    assert unwrap_network(wrapped) is student
    assert set(ema.teacher.state_dict()) == set(student.state_dict())
    with torch.no_grad():
        student[0].weight.add_(1.0)
    ema.update(wrapped)
    torch.testing.assert_close(ema.teacher[0].weight, student[0].weight)


def _mse(pred, target):
    return ((pred - target) ** 2).mean()


def _batches(n: int) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    return [
        {"image": torch.rand((2, 1, 6, 6), generator=g), "label": torch.rand((2, 1, 6, 6), generator=g)}
        for _ in range(n)
    ]


def _trainer(net, accumulation_steps=1, loss=_mse, **kwargs) -> MultiPassTrainer:
    return MultiPassTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=_batches(3),
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        loss_function=loss,
        accumulation_steps=accumulation_steps,
        decollate=False,
        **kwargs,
    )


@pytest.mark.parametrize("accumulation_steps, steps", [(1, [1, 2, 3]), (2, [2, 3]), (3, [3])])
def test_attached_teacher_moves_after_optimizer_steps_only(accumulation_steps, steps):
    torch.manual_seed(0)
    net = nn.Conv2d(1, 1, 3, padding=1)
    trainer = _trainer(net, accumulation_steps)
    ema = EMATeacher(net, alpha=0.5)
    ema.attach(trainer)
    teachers: list[torch.Tensor] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: teachers.append(ema.teacher.weight.clone()))
    initial = ema.teacher.weight.clone()
    trainer.run()
    previous = initial
    for iteration, weight in enumerate(teachers, start=1):
        assert torch.equal(weight, previous) != (iteration in steps), iteration
        previous = weight
    assert trainer.extra_state()["ema_teacher"] is ema


class _InfAtSecondCall:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, pred, target):
        self.calls += 1
        return _mse(pred, target) * (math.inf if self.calls == 2 else 1e-3)


def test_attached_teacher_stays_when_the_float16_scaler_skips_a_step():
    torch.manual_seed(0)
    net = nn.Conv2d(1, 1, 3, padding=1)
    trainer = _trainer(net, loss=_InfAtSecondCall(), amp=True, amp_kwargs={"dtype": torch.float16})
    ema = EMATeacher(net, alpha=0.5)
    ema.attach(trainer)
    teachers: list[torch.Tensor] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: teachers.append(ema.teacher.weight.clone()))
    trainer.run()
    assert trainer.scaler is not None and trainer.scaler.is_enabled()
    assert torch.equal(teachers[1], teachers[0])
    assert not torch.equal(teachers[2], teachers[1])


def test_attach_refuses_an_engine_without_the_step_event():
    from monai.engines import SupervisedTrainer

    net = nn.Conv2d(1, 1, 3, padding=1)
    trainer = SupervisedTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=_batches(1),
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        loss_function=_mse,
    )
    with pytest.raises(ValueError, match="OPTIMIZER_STEPPED"):
        EMATeacher(net).attach(trainer)
