"""Tests of MultiPassTrainer: the shared training step, its optimizer-step event and its extra state."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from ignite.engine import Events
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.losses import DeepSupervisionLoss, DiceCELoss
from monai.networks.nets import BasicUNet
from monai.utils.enums import CommonKeys as Keys

from monai_masksup.engines import (
    ExtraStateOwner,
    GeneratorState,
    MaskSupTrainer,
    MultiPassTrainer,
    TrainerEvents,
    TrainingStep,
)
from monai_masksup.losses import MaskSupLoss
from monai_masksup.transforms import HoleMaskGenerator

PARITY_FEATURES = (4, 4, 8, 8, 16, 4)


def _batches(n: int, batch_size: int = 2, size: int = 32, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "image": torch.rand((batch_size, 1, size, size), generator=g),
            "label": (torch.rand((batch_size, 1, size, size), generator=g) > 0.5).float(),
        }
        for _ in range(n)
    ]


def _unet() -> BasicUNet:
    torch.manual_seed(0)
    return BasicUNet(spatial_dims=2, in_channels=1, out_channels=1, features=PARITY_FEATURES)


def _conv() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Conv2d(1, 1, 3, padding=1)


def _mse(pred, target):
    return ((pred - target) ** 2).mean()


def _base(data, network=None, loss_function=_mse, trainer_class=MultiPassTrainer, **kwargs) -> MultiPassTrainer:
    """A one-epoch CPU trainer of ``trainer_class`` (a one-convolution network and SGD unless given)."""
    network = _conv() if network is None else network
    kwargs.setdefault("optimizer", torch.optim.SGD(network.parameters(), lr=0.1))
    kwargs.setdefault("decollate", False)
    return trainer_class(
        device="cpu", max_epochs=1, train_data_loader=data, network=network, loss_function=loss_function, **kwargs
    )


def _zero_holes(batch_size, spatial_size, device=None, generator=None):
    return torch.zeros((batch_size, 1, *spatial_size), device=device)


def _parameters_after_three_steps(make_trainer, accumulation_steps: int) -> list[torch.Tensor]:
    net = _unet()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    trainer = make_trainer(net, optimizer, accumulation_steps)
    trainer.run()
    assert trainer.state.iteration == 3
    return [p.detach().clone() for p in net.parameters()]


def _parity_trainer(trainer_class, loss_function, **kwargs):
    """A factory of ``trainer_class`` on the parity data, for a network, an optimizer and accumulation steps."""

    def make(net, optimizer, acc):
        return trainer_class(
            device="cpu",
            max_epochs=1,
            train_data_loader=_batches(3),
            network=net,
            optimizer=optimizer,
            loss_function=loss_function,
            accumulation_steps=acc,
            decollate=False,
            **kwargs,
        )

    return make


_supervised = _parity_trainer(SupervisedTrainer, DiceCELoss(sigmoid=True))


def _masksup(branch_mode):
    # weights (1, 0, 0) and no holes: only the clean branch's DiceCE reaches the gradients
    loss = MaskSupLoss(seg_loss=DiceCELoss(sigmoid=True), weights=(1.0, 0.0, 0.0))
    return _parity_trainer(MaskSupTrainer, loss, mask_generator=_zero_holes, branch_mode=branch_mode)


@pytest.mark.parametrize("accumulation_steps", [1, 2])
@pytest.mark.parametrize(
    "make_trainer",
    [_parity_trainer(MultiPassTrainer, DiceCELoss(sigmoid=True)), _masksup("separate"), _masksup("batched")],
    ids=["base", "separate", "batched"],
)
def test_three_steps_give_supervised_trainer_parameters(make_trainer, accumulation_steps):
    expected = _parameters_after_three_steps(_supervised, accumulation_steps)
    got = _parameters_after_three_steps(make_trainer, accumulation_steps)
    for p, q in zip(got, expected):
        torch.testing.assert_close(p, q)
    # not vacuous: the weights moved, and accumulating changes where they moved to
    initial = [p.detach() for p in _unet().parameters()]
    assert any(not torch.allclose(p, p0) for p, p0 in zip(got, initial))
    other = _parameters_after_three_steps(_supervised, 3 - accumulation_steps)
    assert any(not torch.allclose(p, o) for p, o in zip(got, other))


@pytest.mark.parametrize(
    "accumulation_steps, epochs, expected", [(1, 1, [1, 2, 3]), (2, 1, [2, 3]), (2, 2, [2, 3, 5, 6]), (3, 1, [3])]
)
def test_optimizer_stepped_fires_on_real_steps_only(accumulation_steps, epochs, expected):
    net = _conv()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    trainer = _base(_batches(3, size=8), network=net, optimizer=optimizer, accumulation_steps=accumulation_steps)
    trainer.state.max_epochs = epochs
    events: list[int] = []
    steps: list[int] = []
    trainer.add_event_handler(TrainerEvents.OPTIMIZER_STEPPED, lambda e: events.append(e.state.iteration))
    optimizer.register_step_post_hook(lambda *_: steps.append(trainer.state.iteration))
    trainer.run()
    assert steps == expected
    assert events == expected


class _InfOnCall:
    """MSE loss (scaled down so float16 gradients stay finite) that is infinite at the given calls (1-based)."""

    def __init__(self, inf_calls: set[int]) -> None:
        self.inf_calls = inf_calls
        self.calls = 0

    def __call__(self, pred, target):
        self.calls += 1
        factor = math.inf if self.calls in self.inf_calls else 1e-3
        return _mse(pred, target) * factor


def test_optimizer_stepped_does_not_fire_when_the_float16_scaler_skips_a_step():
    net = _conv()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    trainer = _base(
        _batches(3, size=8),
        network=net,
        optimizer=optimizer,
        loss_function=_InfOnCall({2}),
        amp=True,
        amp_kwargs={"dtype": torch.float16},
    )
    events: list[int] = []
    steps: list[int] = []
    weights: list[torch.Tensor] = []
    trainer.add_event_handler(TrainerEvents.OPTIMIZER_STEPPED, lambda e: events.append(e.state.iteration))
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: weights.append(net.weight.detach().clone()))
    optimizer.register_step_post_hook(lambda *_: steps.append(trainer.state.iteration))
    trainer.run()
    # a real CPU GradScaler found the inf gradients of iteration 2 and skipped optimizer.step()
    assert trainer.scaler is not None and trainer.scaler.is_enabled()
    assert trainer.state.output[Keys.PRED].dtype == torch.float16
    assert steps == [1, 3]
    assert events == [1, 3]
    torch.testing.assert_close(weights[1], weights[0])
    assert not torch.allclose(weights[2], weights[1])


def test_bfloat16_autocast_uses_no_scaler_and_keeps_the_loss_in_float32():
    trainer = _base(_batches(2, size=8), amp=True, amp_kwargs={"dtype": torch.bfloat16})
    events: list[int] = []
    trainer.add_event_handler(TrainerEvents.OPTIMIZER_STEPPED, lambda e: events.append(e.state.iteration))
    trainer.run()
    out = trainer.state.output
    assert out[Keys.PRED].dtype == torch.bfloat16 and out[Keys.LOSS].dtype == torch.float32
    assert not trainer.scaler.is_enabled()
    assert events == [1, 2]


def test_events_fire_in_order_and_see_the_output_filled_so_far():
    trainer = _base(_batches(1, size=8))
    seen: list[tuple[str, set]] = []
    for event in (
        IterationEvents.FORWARD_COMPLETED,
        IterationEvents.LOSS_COMPLETED,
        IterationEvents.BACKWARD_COMPLETED,
        TrainerEvents.OPTIMIZER_STEPPED,
        IterationEvents.MODEL_COMPLETED,
    ):
        trainer.add_event_handler(event, lambda e, name=event.value: seen.append((name, set(e.state.output))))
    trainer.run()
    assert [name for name, _ in seen] == [
        "forward_completed",
        "loss_completed",
        "backward_completed",
        "optimizer_stepped",
        "model_completed",
    ]
    assert seen[0][1] == {Keys.IMAGE, Keys.LABEL, Keys.PRED}
    assert seen[1][1] == {Keys.IMAGE, Keys.LABEL, Keys.PRED, Keys.LOSS}


def test_optimizer_stepped_is_registered_and_exported_with_the_events():
    trainer = _base(_batches(1, size=8))
    assert trainer.has_registered_events(TrainerEvents.OPTIMIZER_STEPPED)
    assert trainer.has_registered_events(IterationEvents.MODEL_COMPLETED)


@pytest.mark.parametrize("trainer_class", [MultiPassTrainer, MaskSupTrainer])
def test_iteration_update_is_refused(trainer_class):
    with pytest.raises(ValueError, match="iteration_update"):
        _base(_batches(1, size=8), trainer_class=trainer_class, iteration_update=lambda engine, batch: {})


class _ArgsNet(torch.nn.Module):
    """A convolution whose output is multiplied by a keyword argument, recording what it was called with."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = _conv()
        self.calls: list[tuple] = []

    def forward(self, x, gain=1.0):
        self.calls.append((x.shape, gain))
        return self.conv(x) * gain


def test_four_tuple_prepare_batch_passes_args_and_kwargs_to_the_network():
    def prepare_batch(batchdata, device=None, non_blocking=False, **kwargs):
        return batchdata["image"].to(device), batchdata["label"].to(device), (), {"gain": 3.0}

    net = _ArgsNet()
    # lr 0 keeps the weights, so the last prediction can be recomputed from them
    optimizer = torch.optim.SGD(net.parameters(), lr=0.0)
    trainer = _base(_batches(2, size=8), network=net, optimizer=optimizer, prepare_batch=prepare_batch)
    trainer.run()
    assert [gain for _, gain in net.calls] == [3.0, 3.0]
    image = trainer.state.output[Keys.IMAGE]
    torch.testing.assert_close(trainer.state.output[Keys.PRED], net.conv(image) * 3.0, rtol=0, atol=0)


class _DeepSupervisionNet(torch.nn.Module):
    """A full-resolution output and a half-resolution auxiliary one, as a deep-supervision network in training."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = _conv()

    def forward(self, x):
        out = self.conv(x)
        return [out, out[..., ::2, ::2] + 1.0]


class _RecordingLoss(torch.nn.Module):
    """Wraps a loss and keeps the (detached) arguments of every call."""

    def __init__(self, loss) -> None:
        super().__init__()
        self.loss = loss
        self.args: list[tuple] = []

    def forward(self, *args):
        self.args.append(args)
        return self.loss(*args)


def test_deep_supervision_loss_gets_the_list_and_pred_the_first_output():
    loss = _RecordingLoss(DeepSupervisionLoss(DiceCELoss(sigmoid=True)))
    trainer = _base(_batches(1, size=8), network=_DeepSupervisionNet(), loss_function=loss)
    trainer.run()
    preds, _ = loss.args[0]
    assert isinstance(preds, list) and [p.shape[-1] for p in preds] == [8, 4]
    pred = trainer.state.output[Keys.PRED]
    assert isinstance(pred, torch.Tensor) and pred.shape == (2, 1, 8, 8)
    torch.testing.assert_close(pred, preds[0])


def test_masksup_loss_gets_raw_float32_lists_in_batched_mode():
    loss = _RecordingLoss(lambda clean, masked, target: _mse(clean[0], target) + _mse(masked[0], target))
    trainer = _base(
        _batches(1, size=8),
        network=_DeepSupervisionNet(),
        loss_function=loss,
        trainer_class=MaskSupTrainer,
        branch_mode="batched",
        mask_seed=0,
        amp=True,
        amp_kwargs={"dtype": torch.bfloat16},
    )
    trainer.run()
    clean, masked, _ = loss.args[0]
    assert isinstance(clean, list) and isinstance(masked, list)
    assert [p.shape for p in clean] == [p.shape for p in masked] == [(2, 1, 8, 8), (2, 1, 4, 4)]
    assert all(p.dtype == torch.float32 for p in clean + masked)
    out = trainer.state.output
    assert out[Keys.PRED].shape == out["pred_masked"].shape == (2, 1, 8, 8)
    torch.testing.assert_close(out[Keys.PRED].float(), clean[0])
    torch.testing.assert_close(out["pred_masked"].float(), masked[0])
    assert not torch.equal(out["image_masked"], out[Keys.IMAGE])


class _TeacherStudentTrainer(MultiPassTrainer):
    """The shape of a mean-teacher engine: an extra unlabelled loader, a frozen teacher, two logged loss terms."""

    def __init__(self, *args, unlabelled, teacher, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.unlabelled = iter(unlabelled)
        self.teacher = teacher
        self.teacher_dtypes: list[torch.dtype] = []
        self.unlabelled_targets: list = []

    def compute_loss(self, batch):
        unlabelled = self.prepare(next(self.unlabelled))
        self.unlabelled_targets.append(unlabelled.targets)
        pred = self.forward(batch.inputs)
        student = self.forward(unlabelled.inputs)
        with torch.no_grad(), self.autocast():
            teacher = self.teacher(unlabelled.inputs)
        self.teacher_dtypes.append(teacher.dtype)
        sup = _mse(pred.float(), batch.targets)
        cons = _mse(student.float(), teacher.float())
        outputs = {"pred_teacher": teacher, "student_doubled": 2 * student, "absent": None, "note": "kept"}
        return TrainingStep(sup + 0.5 * cons, pred, outputs, {"sup": sup.detach(), "cons": cons.detach()})


def test_subclass_with_extra_loader_and_teacher_logs_its_terms_and_detached_outputs():
    trainer = _base(
        _batches(2, size=8),
        trainer_class=_TeacherStudentTrainer,
        amp=True,
        amp_kwargs={"dtype": torch.bfloat16},
        unlabelled=[{"image": b["image"]} for b in _batches(2, size=8, seed=1)],
        teacher=_conv(),
    )
    trainer.run()
    out = trainer.state.output
    # the teacher ran under the trainer's autocast; the unlabelled batches have no label
    assert trainer.teacher_dtypes == [torch.bfloat16, torch.bfloat16]
    assert trainer.unlabelled_targets == [None, None]
    assert "absent" not in out and out["note"] == "kept"
    assert not out["student_doubled"].requires_grad and out[Keys.PRED].requires_grad
    assert type(out["loss_sup"]) is float and type(out["loss_cons"]) is float
    assert out[Keys.LOSS].item() == pytest.approx(out["loss_sup"] + 0.5 * out["loss_cons"], rel=1e-6)


def test_subclass_output_named_like_a_common_key_is_rejected():
    class _Clobbering(MultiPassTrainer):
        def compute_loss(self, batch):
            pred = self.forward(batch.inputs)
            return TrainingStep(_mse(pred, batch.targets), pred, {Keys.LOSS: 0.0})

    trainer = _base(_batches(1, size=8), trainer_class=_Clobbering)
    with pytest.raises(ValueError, match="'loss'"):
        trainer.run()


def test_extra_state_registration():
    trainer = _base(_batches(1, size=8))
    assert isinstance(trainer, ExtraStateOwner) and trainer.extra_state() == {}
    state = GeneratorState(torch.Generator().manual_seed(1))
    trainer.register_extra_state("teacher_rng", state)
    assert trainer.extra_state() == {"teacher_rng": state}
    with pytest.raises(ValueError, match="already registered"):
        trainer.register_extra_state("teacher_rng", state)
    with pytest.raises(TypeError, match="queue"):
        trainer.register_extra_state("queue", [1, 2, 3])
    with pytest.raises(ValueError, match="non-empty"):
        trainer.register_extra_state("", state)
    # the returned dict is a copy: changing it registers nothing
    trainer.extra_state()["other"] = state
    assert set(trainer.extra_state()) == {"teacher_rng"}


def test_masksup_trainer_registers_its_seeded_mask_generator():
    def trainer(seed):
        return _base(
            _batches(2),
            network=_unet(),
            loss_function=None,
            trainer_class=MaskSupTrainer,
            mask_generator=HoleMaskGenerator("high"),
            mask_seed=seed,
        )

    assert trainer(None).extra_state() == {}
    seeded = trainer(3)
    state = seeded.extra_state()
    assert set(state) == {"mask_rng"} and state["mask_rng"].generator is seeded.mask_rng()
    # what a checkpoint saves before the run brings the same masks back after it
    saved = copy.deepcopy(state["mask_rng"].state_dict())
    seeded.run()
    first_run_mask = seeded.state.output["hole_mask"]
    state["mask_rng"].load_state_dict(saved)
    seeded.state.max_epochs = 2
    seeded.run()
    torch.testing.assert_close(seeded.state.output["hole_mask"], first_run_mask)


def test_monai_trainer_run_only_sets_the_scaler_before_workflow_run(monkeypatch):
    # MultiPassTrainer.run calls Workflow.run itself, skipping MONAI's Trainer.run, on the ground that Trainer.run
    # (MONAI 1.6.1) does nothing but replace the scaler: this pins that ground, so a MONAI release that does more
    # there (or overrides run() anywhere between SupervisedTrainer and Workflow) fails here, not silently.
    from monai.engines.trainer import Trainer
    from monai.engines.workflow import Workflow

    overriding = [c for c in SupervisedTrainer.__mro__ if issubclass(c, Workflow) and "run" in vars(c)]
    assert overriding == [Trainer, Workflow]
    engine = _base(_batches(1), trainer_class=SupervisedTrainer, amp=True)
    before = dict(vars(engine)), dict(vars(engine.state))
    seen = []
    monkeypatch.setattr(Workflow, "run", lambda self: seen.append((dict(vars(self)), dict(vars(self.state)))))
    with warnings.catch_warnings():  # torch.cuda.amp.GradScaler is deprecated, and warns without CUDA
        warnings.simplefilter("ignore")
        Trainer.run(engine)
    assert len(seen) == 1
    attributes, state = seen[0]
    assert state.keys() == before[1].keys() and all(state[k] is before[1][k] for k in state)
    assert attributes.keys() == before[0].keys()
    assert [k for k in attributes if attributes[k] is not before[0][k]] == ["scaler"]
