"""Tests of SemiSupervisedTrainer: the CutMix/Cutout consistency against the reference vectors (section 2b-2d),
loader cycling, every perturbation on CPU, MaskSup combined, DDP and resume with the same teacher."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
from ignite.engine import Events
from monai.losses import DiceCELoss
from monai.utils.enums import CommonKeys as Keys
from torch import nn

from monai_masksup.engines import PERTURBATIONS, SemiSupervisedTrainer, sigmoid_rampup
from monai_masksup.engines.semi_supervised_trainer import PAIRED_PERTURBATIONS
from monai_masksup.keys import PluginKeys
from monai_masksup.losses import ConsistencyLoss, MaskSupLoss
from monai_masksup.networks import EMATeacher
from tests.conftest import load_reference

ATOL = 1e-6


class _StoredLogits(nn.Module):
    """A stand-in network: returns the stored logits of the input it recognises (zeros otherwise)."""

    def __init__(self, table: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        super().__init__()
        self.table = table
        self.offset = nn.Parameter(torch.zeros(()))  # so that the optimizer has something to step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for image, logits in self.table:
            if image.shape == x.shape and torch.equal(image, x):
                return logits + self.offset
        return torch.zeros(x.shape[0], 3, *x.shape[2:]) + self.offset


class _Recording:
    """Wraps a consistency loss and keeps the arguments of its calls."""

    def __init__(self, loss: ConsistencyLoss) -> None:
        self.loss = loss
        self.calls: list[tuple] = []

    def __call__(self, student, teacher, mask=None):
        self.calls.append((student.detach(), teacher.detach(), None if mask is None else mask.detach()))
        return self.loss(student, teacher, mask)

    def loss_components(self):
        return self.loss.loss_components()


def _t(ref: dict, name: str) -> torch.Tensor:
    return torch.from_numpy(ref[name].copy())


def _zero_loss(pred, label):
    return (pred * 0.0).sum()


def _reference_trainer(ref, perturbation, consistency_loss, student_image, mask_name):
    img_a, img_b = _t(ref, "img_a"), _t(ref, "img_b")
    net = _StoredLogits(
        [(img_a, _t(ref, "logits_tea_a")), (img_b, _t(ref, "logits_tea_b")), (_t(ref, student_image), _t(ref, "logits_stu"))]
    )
    labelled = [{"image": torch.full_like(img_a, 7.0), "label": torch.zeros(2, 3, 16, 16)}]
    kwargs = {}
    if perturbation == "cutmix":
        kwargs["unlabeled_data_loader_b"] = [{"image": img_b}]
    return SemiSupervisedTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=labelled,
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.0),
        loss_function=_zero_loss,
        unlabeled_data_loader=[{"image": img_a, "box_mask": _t(ref, mask_name)}],
        perturbation=perturbation,
        consistency_loss=consistency_loss,
        decollate=False,
        **kwargs,
    )


@pytest.mark.parametrize(
    "loss_kwargs, expected",
    [
        ({"confidence_threshold": 0.97}, "mix_loss_var_conf_mean"),
        ({"confidence_threshold": 0.97, "confidence_per_pixel": True}, "mix_loss_var_conf_pixel"),
        ({"confidence_threshold": 0.0}, "mix_loss_var_noconf"),
        ({"variant": "kld", "confidence_threshold": 0.97}, "mix_loss_kld_conf_mean"),
    ],
)
def test_cutmix_step_matches_reference(loss_kwargs, expected):
    ref = load_reference("cutmix_consistency.npz")
    consistency = _Recording(ConsistencyLoss(**loss_kwargs))
    trainer = _reference_trainer(ref, "cutmix", consistency, "mix_student_image", "mix_mask")
    trainer.run()
    out = trainer.state.output
    student, teacher, loss_mask = consistency.calls[0]
    # the student ran on the mixed image, the teacher's logits on the two unmixed images were mixed with M
    torch.testing.assert_close(out[PluginKeys.IMAGE_MASKED], _t(ref, "mix_student_image"), rtol=0, atol=ATOL)
    torch.testing.assert_close(teacher, _t(ref, "mix_logits_tea"), rtol=0, atol=ATOL)
    torch.testing.assert_close(torch.softmax(teacher, 1), _t(ref, "mix_prob_tea"), rtol=0, atol=ATOL)
    torch.testing.assert_close(student, _t(ref, "logits_stu"), rtol=0, atol=ATOL)
    assert loss_mask is None  # all-ones validity: 1*(1-M) + 1*M
    assert torch.equal(out[PluginKeys.HOLE_MASK], _t(ref, "mix_mask"))
    assert out[PluginKeys.LOSS_CONSISTENCY] == pytest.approx(float(ref[expected]), rel=1e-5, abs=1e-6)
    if loss_kwargs["confidence_threshold"] > 0:
        assert out[PluginKeys.LOSS_CONFIDENCE_RATE] == pytest.approx(float(ref["mix_conf_rate"]), abs=1e-7)
    assert out[Keys.LOSS].item() == pytest.approx(float(ref[expected]), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize(
    "loss_kwargs, expected",
    [
        ({"confidence_threshold": 0.97}, "cut_loss_var_conf_mean"),
        ({"confidence_threshold": 0.97, "confidence_per_pixel": True}, "cut_loss_var_conf_pixel"),
        ({"confidence_threshold": 0.0}, "cut_loss_var_noconf"),
    ],
)
def test_cutout_step_matches_reference(loss_kwargs, expected):
    ref = load_reference("cutmix_consistency.npz")
    consistency = _Recording(ConsistencyLoss(**loss_kwargs))
    trainer = _reference_trainer(ref, "cutout", consistency, "cut_student_image", "cut_mask")
    trainer.run()
    out = trainer.state.output
    _, teacher, loss_mask = consistency.calls[0]
    torch.testing.assert_close(out[PluginKeys.IMAGE_MASKED], _t(ref, "cut_student_image"), rtol=0, atol=ATOL)
    # the teacher saw the uncut image; the loss mask is the kept box
    torch.testing.assert_close(torch.softmax(teacher, 1), _t(ref, "cut_prob_tea"), rtol=0, atol=ATOL)
    assert torch.equal(loss_mask, _t(ref, "cut_loss_mask_before_conf"))
    assert out[PluginKeys.LOSS_CONSISTENCY] == pytest.approx(float(ref[expected]), rel=1e-5, abs=1e-6)
    if loss_kwargs["confidence_threshold"] > 0:
        assert out[PluginKeys.LOSS_CONFIDENCE_RATE] == pytest.approx(float(ref["cut_conf_rate"]), abs=1e-7)


def test_sigmoid_rampup_values():
    assert sigmoid_rampup(0, 10) == pytest.approx(math.exp(-5.0))
    assert sigmoid_rampup(5, 10) == pytest.approx(math.exp(-1.25))
    assert sigmoid_rampup(10, 10) == sigmoid_rampup(30, 10) == 1.0
    assert sigmoid_rampup(3, 0) == 1.0


def _marked(n: int, tag: float, size: int = 4, label: bool = True) -> list[dict]:
    """Batches whose image value says which loader and batch they come from: ``tag + index``."""
    batches = []
    for i in range(n):
        item = {"image": torch.full((2, 1, size, size), tag + i)}
        if label:
            item["label"] = torch.zeros(2, 1, size, size)
        batches.append(item)
    return batches


class _Recorder(nn.Module):
    """A one-convolution network that records the first pixel of every input it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        self.seen: list[float] = []

    def forward(self, x):
        self.seen.append(float(x.flatten()[0]))
        return self.conv(x)


@pytest.mark.parametrize("epoch_length, expected_unlabelled", [(None, [100, 101] * 3), (3, [100, 101, 100] * 2)])
def test_loaders_of_different_lengths_keep_cycling(epoch_length, expected_unlabelled):
    net = _Recorder()
    trainer = SemiSupervisedTrainer(
        device="cpu",
        max_epochs=2 if epoch_length else 3,
        train_data_loader=_marked(3, 0.0),
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.0),
        loss_function=lambda p, y: (p * 0).sum(),
        unlabeled_data_loader=_marked(2, 100.0, label=False),
        perturbation="cutout",
        box_mask_generator=lambda b, s, device=None, generator=None: torch.ones(b, 1, *s),
        epoch_length=epoch_length,
        decollate=False,
    )
    trainer.run()
    assert trainer.state.iteration == 6
    # per iteration: the labelled image, then the cut unlabelled image (mask of ones: unchanged)
    labelled, unlabelled = net.seen[0::2], net.seen[1::2]
    assert labelled == [0.0, 1.0, 2.0] * 2
    assert unlabelled == expected_unlabelled


def _small_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 1, 1))


def _random(n: int, seed: int, size: int = 16, label: bool = True) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        item = {"image": torch.rand((2, 1, size, size), generator=g)}
        if label:
            item["label"] = (torch.rand((2, 1, size, size), generator=g) > 0.5).float()
        out.append(item)
    return out


def _trainer(perturbation: str, seed: int = 0, n: int = 3, **kwargs) -> SemiSupervisedTrainer:
    torch.manual_seed(seed)
    net = kwargs.pop("network", None) or _small_net()
    kwargs.setdefault("loss_function", DiceCELoss(sigmoid=True))
    kwargs.setdefault("unlabeled_data_loader", _random(n, seed + 1, label=False))
    return SemiSupervisedTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=_random(n, seed),
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        perturbation=perturbation,
        consistency_loss=ConsistencyLoss(confidence_threshold=0.0),
        mask_seed=0,
        decollate=False,
        **kwargs,
    )


@pytest.mark.parametrize("perturbation", PERTURBATIONS)
def test_three_iterations_of_each_perturbation(perturbation):
    trainer = _trainer(perturbation, epoch_length=3)
    before = {k: v.clone() for k, v in trainer.teacher.teacher.state_dict().items()}
    consistency: list[float] = []
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: consistency.append(e.state.output[PluginKeys.LOSS_CONSISTENCY])
    )
    trainer.run()
    out = trainer.state.output
    assert trainer.state.iteration == 3
    assert out[PluginKeys.IMAGE_MASKED].shape == out[PluginKeys.PRED_MASKED].shape == (2, 1, 16, 16)
    assert all(math.isfinite(c) and c > 0 for c in consistency)
    assert math.isfinite(out["loss_supervised"])
    after = trainer.teacher.teacher.state_dict()
    assert not torch.equal(after["0.weight"], before["0.weight"])
    # the teacher keeps its own counter (2 forwards per CutMix / ICT iteration, else 1), not the student's
    assert int(after["1.num_batches_tracked"]) == (6 if perturbation in PAIRED_PERTURBATIONS else 3)
    if perturbation in ("cutout", "hole_cutout"):
        assert not torch.equal(out[PluginKeys.IMAGE_MASKED], trainer.state.output[Keys.IMAGE])


def test_cutmix_with_one_loader_draws_two_batches_and_halves_the_epoch():
    trainer = _trainer("cutmix", n=4)
    assert trainer.state.epoch_length == 2
    trainer.run()
    assert trainer.state.iteration == 2


def test_masksup_loss_adds_the_context_branch_on_labelled_images():
    trainer = _trainer("cutmix", loss_function=MaskSupLoss(), epoch_length=2)
    trainer.run()
    out = trainer.state.output
    for key in (PluginKeys.LOSS_SEG, PluginKeys.LOSS_CONTEXT, PluginKeys.LOSS_TASK_SIM, PluginKeys.LOSS_CONSISTENCY):
        assert math.isfinite(out[key])
    assert out["loss_supervised"] == pytest.approx(
        out[PluginKeys.LOSS_SEG] + out[PluginKeys.LOSS_CONTEXT] + out[PluginKeys.LOSS_TASK_SIM], rel=1e-5
    )


def test_rampup_scales_the_consistency_by_epoch():
    trainer = _trainer("cutout", rampup_epochs=4, consistency_weight=2.0, epoch_length=1)
    trainer.state.max_epochs = 2
    weights: list[float] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: weights.append(e.state.output["loss_consistency_weight"]))
    trainer.run()
    assert weights == pytest.approx([2.0 * math.exp(-5.0), 2.0 * math.exp(-5.0 * 0.75**2)])


def test_batch_provided_box_masks_of_the_wrong_shape_are_refused():
    unlabelled = [{"image": torch.rand(2, 1, 16, 16), "box_mask": torch.ones(2, 1, 8, 8)}]
    trainer = _trainer("cutout", unlabeled_data_loader=unlabelled, epoch_length=1)
    with pytest.raises(ValueError, match="box_mask"):
        trainer.run()


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="perturbation"):
        _trainer("mixup")
    with pytest.raises(ValueError, match="epoch_length"):
        _trainer("cutout", unlabeled_data_loader=iter(_random(2, 0, label=False)))
    with pytest.raises(TypeError, match="teacher"):
        _trainer("cutout", teacher=_small_net())


def test_teacher_is_registered_as_extra_state_with_the_mask_generator():
    trainer = _trainer("cutmix")
    state = trainer.extra_state()
    assert isinstance(state["ema_teacher"], EMATeacher) and "mask_rng" in state


def _ddp_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist
    from monai.data import DataLoader, Dataset, DistributedSampler
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        torch.manual_seed(0)
        net = DistributedDataParallel(_small_net())
        items = [{"image": torch.rand(1, 16, 16)} for _ in range(8)]
        dataset = Dataset(items)
        loaders = [
            DataLoader(dataset, batch_size=2, sampler=DistributedSampler(dataset, shuffle=True)) for _ in range(2)
        ]
        trainer = SemiSupervisedTrainer(
            device="cpu",
            max_epochs=2,
            train_data_loader=_random(2, seed=10 + rank),
            network=net,
            optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
            loss_function=DiceCELoss(sigmoid=True),
            unlabeled_data_loader=loaders[0],
            unlabeled_data_loader_b=loaders[1],
            perturbation="cutmix",
            consistency_loss=ConsistencyLoss(confidence_threshold=0.0),
            mask_seed=0,
            decollate=False,
        )
        sampler_epochs = []
        for loader in loaders:
            original = loader.sampler.set_epoch
            loader.sampler.set_epoch = lambda e, original=original: (sampler_epochs.append(e), original(e))
        trainer.run()
        torch.save(
            {
                "student": [p.detach().clone() for p in net.module.parameters()],
                "teacher": [p.detach().clone() for p in trainer.teacher.teacher.parameters()],
                "iterations": trainer.state.iteration,
                "epoch_length": trainer.state.epoch_length,
                "sampler_epochs": sampler_epochs,
                "loss": trainer.state.output[Keys.LOSS].item(),
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_processes_keep_student_and_teacher_in_sync(tmp_path: Path):
    import torch.multiprocessing as mp

    start_method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(
        _ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True, start_method=start_method
    )
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    torch.manual_seed(0)
    initial = [p.detach() for p in _small_net().parameters()]
    # 8 images on 2 ranks in batches of 2: 2 batches per rank and loader, one CutMix pass = 2 iterations
    assert rank0["epoch_length"] == 2 and rank0["iterations"] == rank1["iterations"] == 4
    assert math.isfinite(rank0["loss"]) and math.isfinite(rank1["loss"])
    for key in ("student", "teacher"):
        for p0, p1 in zip(rank0[key], rank1[key]):
            torch.testing.assert_close(p0, p1)
    assert any(not torch.allclose(p0, p) for p0, p in zip(rank0["teacher"], initial))
    # a fresh shuffle for every pass and loader: loader a gets even, loader b odd sampler epochs
    assert sorted(rank0["sampler_epochs"]) == sorted(set(rank0["sampler_epochs"]))
    assert len(rank0["sampler_epochs"]) == 4


class _PerSampleLogits(nn.Module):
    """A stand-in teacher/student: logits ``a`` for an all-ones sample, ``b`` for an all-zeros one."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.a, self.b = a, b
        self.offset = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        level = x.flatten(1).mean(1).reshape(-1, 1, 1, 1)
        return level * self.a + (1 - level) * self.b + self.offset


@pytest.mark.parametrize("channels", [1, 3])
def test_ict_target_mixes_teacher_probabilities_with_the_image_weights(channels):
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(1, channels, 4, 4, generator=g) * 3, torch.randn(1, channels, 4, 4, generator=g) * 3
    consistency = _Recording(ConsistencyLoss())
    net = _PerSampleLogits(a, b)
    trainer = SemiSupervisedTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=[{"image": torch.zeros(4, 1, 4, 4), "label": torch.zeros(4, channels, 4, 4)}],
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.0),
        loss_function=_zero_loss,
        unlabeled_data_loader=[{"image": torch.ones(4, 1, 4, 4)}],
        unlabeled_data_loader_b=[{"image": torch.zeros(4, 1, 4, 4)}],
        perturbation="ict",
        consistency_loss=consistency,
        mask_seed=0,
        decollate=False,
    )
    trainer.run()
    # x_a = 1, x_b = 0: the mixed image is λ itself
    lam = trainer.state.output[PluginKeys.IMAGE_MASKED].flatten(1).mean(1).reshape(-1, 1, 1, 1)
    assert ((lam > 0) & (lam < 1)).all() and lam.unique().numel() == 4
    _, target, _ = consistency.calls[0]
    prob = (lambda z: torch.sigmoid(z)) if channels == 1 else (lambda z: torch.softmax(z, 1))
    expected = lam * prob(a) + (1 - lam) * prob(b)
    torch.testing.assert_close(prob(target), expected, rtol=1e-5, atol=1e-6)


def test_vat_perturbation_has_the_set_size_and_beats_a_random_one():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 3, 3, padding=1))
    images = _random(1, 5, label=False)
    trainer = _trainer("vat", network=net, unlabeled_data_loader=images, epoch_length=1, vat_epsilon=0.2)
    trainer.optimizer.param_groups[0]["lr"] = 0.0
    trainer.loss_function = _zero_loss
    trainer.run()
    x = images[0]["image"]
    r_adv = trainer.state.output[PluginKeys.IMAGE_MASKED] - x
    torch.testing.assert_close(r_adv.flatten(1).pow(2).mean(1).sqrt(), torch.full((2,), 0.2), rtol=1e-4, atol=0)
    kl = ConsistencyLoss("kld")
    with torch.no_grad():
        target = net(x)
        adversarial = kl(net(x + r_adv), target)
        g = torch.Generator().manual_seed(1)
        randoms = []
        for _ in range(5):
            r = torch.randn(x.shape, generator=g)
            r = 0.2 * r / r.flatten(1).pow(2).mean(1).sqrt().reshape(-1, 1, 1, 1)
            randoms.append(kl(net(x + r), target))
    # one power iteration: a direction of much larger divergence than random ones of the same size
    assert adversarial > 1.5 * max(randoms)


def test_vat_probe_does_not_count_as_a_batch_of_the_student():
    trainer = _trainer("vat", epoch_length=1)
    student = trainer.network
    trainer.run()
    # the labelled forward and the student's forward on x + r_adv; not the probing forward
    assert int(student[1].num_batches_tracked) == 2
    assert student[1].track_running_stats


def test_ict_alpha_and_vat_sizes_are_checked():
    with pytest.raises(ValueError, match="ict_alpha"):
        _trainer("ict", ict_alpha=0.0)
    with pytest.raises(ValueError, match="vat_epsilon"):
        _trainer("vat", vat_epsilon=-1.0)


def test_drawn_cutmix_masks_are_one_half_box_and_follow_the_seed():
    masks = []
    for seed in (0, 0, 1):
        trainer = _trainer("cutmix", epoch_length=1)
        trainer.mask_rng().manual_seed(seed)
        trainer.run()
        masks.append(trainer.state.output[PluginKeys.HOLE_MASK])
    assert torch.equal(masks[0], masks[1]) and not torch.equal(masks[0], masks[2])
    for mask in masks:
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        # one box of area 0.5 on 16 x 16: within a row/column of rounding of 128 pixels
        assert ((mask.flatten(1).sum(1) - 128).abs() <= 16).all()
