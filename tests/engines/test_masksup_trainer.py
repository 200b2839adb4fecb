"""Tests of MaskSupTrainer: the MaskSup iteration inside a MONAI SupervisedTrainer."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import pytest
import torch
from ignite.engine import Events
from monai.engines import SupervisedTrainer
from monai.handlers import StatsHandler, TensorBoardStatsHandler, from_engine
from monai.losses import DeepSupervisionLoss, DiceCELoss
from monai.networks.nets import BasicUNet
from monai.utils.enums import CommonKeys as Keys

from monai_masksup.engines import MaskSupTrainer
from monai_masksup.losses import MaskSupLoss
from monai_masksup.transforms import HoleMaskGenerator
from tests.conftest import requires_cuda

SMALL_FEATURES = (8, 8, 16, 16, 32, 8)
COMPONENT_KEYS = ("loss_seg", "loss_context", "loss_task_sim")


def _small_unet(spatial_dims: int = 2, norm: str | tuple = ("instance", {"affine": True})) -> BasicUNet:
    return BasicUNet(spatial_dims=spatial_dims, in_channels=1, out_channels=1, features=SMALL_FEATURES, norm=norm)


def _random_batches(n: int, batch_size: int = 2, size: tuple[int, ...] = (32, 32), seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "image": torch.rand((batch_size, 1, *size), generator=g),
            "label": (torch.rand((batch_size, 1, *size), generator=g) > 0.5).float(),
        }
        for _ in range(n)
    ]


def _trainer(data, network=None, max_epochs: int = 1, **kwargs) -> MaskSupTrainer:
    network = _small_unet() if network is None else network
    kwargs.setdefault("optimizer", torch.optim.Adam(network.parameters(), 1e-3))
    return MaskSupTrainer(device="cpu", max_epochs=max_epochs, train_data_loader=data, network=network, **kwargs)


class _RecordingNet(torch.nn.Module):
    """Wraps a network and keeps a copy of every input batch it is called with."""

    def __init__(self, net: torch.nn.Module, return_list: bool = False) -> None:
        super().__init__()
        self.net = net
        self.return_list = return_list
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor):
        self.inputs.append(x.detach().clone())
        out = self.net(x)
        # a deep-supervision style output: full resolution first, then a coarser auxiliary head
        return [out, out[..., ::2, ::2] * 0.0] if self.return_list else out


class _RecordingMaskGenerator:
    """Wraps a HoleMaskGenerator and records the arguments and masks of every call."""

    def __init__(self, generator: HoleMaskGenerator) -> None:
        self.generator = generator
        self.calls: list[dict] = []

    def __call__(self, batch_size, spatial_size, device=None, generator=None):
        hole = self.generator(batch_size, spatial_size, device=device, generator=generator)
        call = {"batch_size": batch_size, "spatial_size": tuple(spatial_size), "device": device, "hole": hole}
        self.calls.append(call)
        return hole


@pytest.mark.parametrize("branch_mode", ["separate", "batched"])
def test_three_iterations_output_keys_and_finite_components(branch_mode):
    trainer = _trainer(_random_batches(3), branch_mode=branch_mode, decollate=False, mask_seed=1)
    trainer.run()
    assert trainer.state.iteration == 3
    out = trainer.state.output
    for key in (Keys.IMAGE, Keys.LABEL, Keys.PRED, Keys.LOSS, "image_masked", "pred_masked", "hole_mask"):
        assert key in out, key
    assert out[Keys.PRED].shape == out[Keys.IMAGE].shape == out["pred_masked"].shape == (2, 1, 32, 32)
    assert not out["pred_masked"].requires_grad and not out["image_masked"].requires_grad
    for key in COMPONENT_KEYS:
        assert isinstance(out[key], float) and math.isfinite(out[key]), key
    # the default MaskSupLoss weights are (1, 1, 1): the loss is the plain sum of the three logged terms
    assert out[Keys.LOSS].item() == pytest.approx(sum(out[k] for k in COMPONENT_KEYS), rel=1e-5)
    # both branches start near BCE of an untrained net (~ln 2), far from 0
    assert 0.3 < out["loss_seg"] < 2.0 and 0.3 < out["loss_context"] < 2.0


def test_separate_mode_masks_only_hole_pixels_on_batch_device():
    data = _random_batches(2, seed=3)
    net = _RecordingNet(_small_unet())
    masks = _RecordingMaskGenerator(HoleMaskGenerator("high"))
    trainer = _trainer(data, network=net, mask_generator=masks, fill_value=0.25, decollate=False)
    trainer.run()
    assert len(net.inputs) == 4 and len(masks.calls) == 2
    for it, batch in enumerate(data):
        call = masks.calls[it]
        assert call["batch_size"] == 2 and call["spatial_size"] == (32, 32)
        assert torch.device(call["device"]) == batch["image"].device == call["hole"].device
        hole = call["hole"].bool().expand_as(batch["image"])
        clean, masked = net.inputs[2 * it], net.inputs[2 * it + 1]
        torch.testing.assert_close(clean, batch["image"])
        # hand rule: image outside holes, fill value inside; "high" coverage leaves holes in every image
        torch.testing.assert_close(masked[~hole], batch["image"][~hole])
        assert torch.all(masked[hole] == 0.25)
        assert bool(hole.any()) and not torch.equal(masked, clean)
    torch.testing.assert_close(trainer.state.output["image_masked"], net.inputs[-1])


def test_batched_mode_runs_one_forward_over_clean_then_masked():
    data = _random_batches(1, seed=4)
    net = _RecordingNet(_small_unet())
    masks = _RecordingMaskGenerator(HoleMaskGenerator("high"))
    trainer = _trainer(data, network=net, mask_generator=masks, branch_mode="batched", decollate=False)
    trainer.run()
    assert len(net.inputs) == 1 and net.inputs[0].shape[0] == 4
    image, hole = data[0]["image"], masks.calls[0]["hole"]
    torch.testing.assert_close(net.inputs[0][:2], image)
    torch.testing.assert_close(net.inputs[0][2:], image * (1 - hole))


def test_batch_provided_masked_image_is_used_instead_of_generated_masks():
    data = _random_batches(2, seed=5)
    for batch in data:
        batch["image_masked"] = torch.flip(batch["image"], dims=(-1,))
        batch["hole_mask"] = torch.ones_like(batch["image"])
    net = _RecordingNet(_small_unet())
    masks = _RecordingMaskGenerator(HoleMaskGenerator("high"))
    trainer = _trainer(data, network=net, mask_generator=masks, decollate=False)
    trainer.run()
    assert masks.calls == []
    for it, batch in enumerate(data):
        torch.testing.assert_close(net.inputs[2 * it + 1], batch["image_masked"])
    torch.testing.assert_close(trainer.state.output["image_masked"], data[-1]["image_masked"])
    torch.testing.assert_close(trainer.state.output["hole_mask"], data[-1]["hole_mask"])


def test_batch_provided_masked_image_of_wrong_shape_raises():
    data = _random_batches(1)
    data[0]["image_masked"] = torch.zeros(2, 1, 16, 16)
    with pytest.raises(ValueError, match="image_masked"):
        _trainer(data).run()


def test_mask_seed_reproduces_the_hole_masks():
    def holes(seed):
        masks = _RecordingMaskGenerator(HoleMaskGenerator("high"))
        _trainer(_random_batches(2), mask_generator=masks, mask_seed=seed).run()
        return [c["hole"] for c in masks.calls]

    first, again, other = holes(7), holes(7), holes(8)
    for a, b in zip(first, again):
        torch.testing.assert_close(a, b)
    assert any(not torch.equal(a, c) for a, c in zip(first, other))


def test_deep_supervision_list_output_uses_first_element():
    torch.manual_seed(0)
    net = _RecordingNet(_small_unet(), return_list=True)
    trainer = _trainer(_random_batches(1), network=net, decollate=False)
    trainer.run()
    pred = trainer.state.output[Keys.PRED]
    assert pred.shape == (2, 1, 32, 32)
    # the auxiliary element is all zeros; the full-resolution one is a real prediction
    assert pred.abs().sum() > 0


def test_invalid_branch_mode_raises():
    with pytest.raises(ValueError, match="branch_mode"):
        _trainer(_random_batches(1), branch_mode="parallel")


def test_is_a_supervised_trainer_with_default_loss_and_mask_generator():
    trainer = _trainer(_random_batches(1))
    assert isinstance(trainer, SupervisedTrainer)
    assert isinstance(trainer.loss_function, MaskSupLoss)
    assert isinstance(trainer.mask_generator, HoleMaskGenerator)
    assert trainer.branch_mode == "separate" and trainer.fill_value == 0.0


def test_gradient_accumulation_steps_the_optimizer_every_second_iteration_and_at_epoch_end():
    net = _small_unet()
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3)
    steps: list[int] = []
    trainer = _trainer(_random_batches(3), network=net, optimizer=optimizer, accumulation_steps=2)
    optimizer.register_step_post_hook(lambda *_: steps.append(trainer.state.iteration))
    trainer.run()
    assert steps == [2, 3]


def test_cpu_bfloat16_autocast_keeps_loss_in_float32():
    trainer = _trainer(_random_batches(1), amp=True, amp_kwargs={"dtype": torch.bfloat16}, decollate=False)
    trainer.run()
    out = trainer.state.output
    assert out[Keys.PRED].dtype == torch.bfloat16
    assert out[Keys.LOSS].dtype == torch.float32 and math.isfinite(out[Keys.LOSS].item())


@pytest.mark.gpu
@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_amp_scales_float16_only_and_makes_masks_on_gpu(dtype):
    net = _small_unet().cuda()
    trainer = MaskSupTrainer(
        device=torch.device("cuda"),
        max_epochs=1,
        train_data_loader=_random_batches(2),
        network=net,
        optimizer=torch.optim.Adam(net.parameters(), 1e-3),
        amp=True,
        amp_kwargs={"dtype": dtype},
        branch_mode="batched",
        decollate=False,
    )
    trainer.run()
    out = trainer.state.output
    assert out["hole_mask"].device.type == "cuda"
    assert out[Keys.PRED].dtype == dtype and out[Keys.LOSS].dtype == torch.float32
    assert math.isfinite(out[Keys.LOSS].item())
    # GradScaler sets its scale lazily at the first scale(): only float16 needs loss scaling
    assert (trainer.scaler._scale is not None) == (dtype == torch.float16)


def test_stats_and_tensorboard_handlers_log_loss_components():
    class _Records(logging.Handler):
        def __init__(self):
            super().__init__(level=logging.INFO)
            self.messages: list[str] = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    class _Writer:
        def __init__(self):
            self.scalars: list[tuple[str, float, int]] = []

        def add_scalar(self, tag, value, step):
            self.scalars.append((tag, float(value), step))

        def flush(self):
            pass

    writer, records = _Writer(), _Records()
    handlers = [
        StatsHandler(
            name="masksup_test_stats",
            tag_name="loss_context",
            output_transform=from_engine(["loss_context"], first=True),
            iteration_log=True,
        ),
        TensorBoardStatsHandler(
            summary_writer=writer, tag_name="loss_seg", output_transform=from_engine(["loss_seg"], first=True)
        ),
    ]
    trainer = _trainer(_random_batches(2), train_handlers=handlers)
    logger = logging.getLogger("masksup_test_stats")
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    try:
        trainer.run()
    finally:
        logger.removeHandler(records)
    # decollate=True (default): the output is a per-image list; every item carries the batch's loss terms
    seg_values = [s for s in writer.scalars if s[0] == "loss_seg"]
    assert [s[2] for s in seg_values] == [1, 2]
    assert seg_values[-1][1] == pytest.approx(trainer.state.output[0]["loss_seg"])
    logged = [m for m in records.messages if "loss_context:" in m]
    assert len(logged) == 2
    assert f"{trainer.state.output[0]['loss_context']:.4f}" in logged[-1]


def _two_disc_images() -> list[dict]:
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    labels = torch.stack(
        [((yy - 12) ** 2 + (xx - 14) ** 2 < 49).float(), ((yy - 20) ** 2 + (xx - 18) ** 2 < 64).float()]
    ).unsqueeze(1)
    images = 0.2 + 0.6 * labels
    return [{"image": images, "label": labels}]


def test_overfits_two_images():
    torch.manual_seed(0)
    net = _small_unet()
    trainer = _trainer(
        _two_disc_images(),
        network=net,
        optimizer=torch.optim.Adam(net.parameters(), 1e-2),
        max_epochs=30,
        mask_seed=0,
        decollate=False,
    )
    losses: list[float] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(e.state.output[Keys.LOSS].item()))
    trainer.run()
    assert len(losses) == 30
    # untrained: seg + context ~ 2 ln 2; a fitted clean branch and a context branch that infers the discs
    # from the visible parts must take the mean of the last iterations below half of that
    assert sum(losses[-3:]) / 3 < 0.5 * losses[0]


def test_3d_smoke():
    # batch norm with two images: instance norm has a single value per channel at the 1^3 bottleneck
    net = _small_unet(spatial_dims=3, norm="batch")
    masks = _RecordingMaskGenerator(HoleMaskGenerator("high"))
    trainer = _trainer(_random_batches(1, size=(16, 16, 16)), network=net, mask_generator=masks, decollate=False)
    trainer.run()
    out = trainer.state.output
    assert masks.calls[0]["hole"].shape == (2, 1, 16, 16, 16)
    assert out[Keys.PRED].shape == (2, 1, 16, 16, 16)
    assert all(math.isfinite(out[k]) for k in COMPONENT_KEYS)


def _ddp_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        results = {}
        for branch_mode in ("separate", "batched"):
            torch.manual_seed(0)  # same initial weights on both ranks
            net = DistributedDataParallel(_small_unet(norm="batch"))
            optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
            trainer = MaskSupTrainer(
                device="cpu",
                max_epochs=1,
                train_data_loader=_random_batches(2, seed=10 + rank),  # different data per rank
                network=net,
                optimizer=optimizer,
                branch_mode=branch_mode,
                mask_seed=0,
                decollate=False,
            )
            trainer.run()
            results[branch_mode] = {
                "params": [p.detach().clone() for p in net.module.parameters()],
                "loss": trainer.state.output[Keys.LOSS].item(),
                "iterations": trainer.state.iteration,
            }
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_processes_keep_parameters_in_sync(tmp_path: Path):
    import torch.multiprocessing as mp

    # fork (Linux) instead of spawn: the children skip re-importing torch and MONAI, most of a spawn's cost
    start_method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(
        _ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True, start_method=start_method
    )
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    torch.manual_seed(0)
    initial = [p.detach() for p in _small_unet(norm="batch").parameters()]
    for mode in ("separate", "batched"):
        assert rank0[mode]["iterations"] == rank1[mode]["iterations"] == 2
        assert math.isfinite(rank0[mode]["loss"]) and math.isfinite(rank1[mode]["loss"])
        # different data per rank, yet all-reduced gradients leave identical, updated weights
        for p0, p1 in zip(rank0[mode]["params"], rank1[mode]["params"]):
            torch.testing.assert_close(p0, p1)
        assert any(not torch.allclose(p0, p) for p0, p in zip(rank0[mode]["params"], initial))


class _FixedComponentsLoss(torch.nn.Module):
    """A loss whose logged components are fixed numbers, to pin how the trainer reports them."""

    def __init__(self, components: dict) -> None:
        super().__init__()
        self.components = components

    def loss_components(self) -> dict:
        return self.components

    def forward(self, pred_clean, pred_masked, target):
        return (pred_clean - target).abs().mean() + (pred_masked - target).abs().mean()


@pytest.mark.parametrize(
    "components",
    [
        {"seg": torch.tensor(0.25), "context": torch.tensor(0.5), "task_sim": torch.tensor(0.125)},
        {"seg": torch.tensor(0.25, dtype=torch.float64), "context": torch.tensor([0.5]), "task_sim": 0.125},
    ],
)
def test_loss_components_are_reported_as_python_floats(components):
    trainer = _trainer(_random_batches(1), loss_function=_FixedComponentsLoss(components))
    trainer.run()
    out = trainer.state.output[0]
    assert {k: out[k] for k in COMPONENT_KEYS} == {"loss_seg": 0.25, "loss_context": 0.5, "loss_task_sim": 0.125}
    assert all(type(out[k]) is float for k in COMPONENT_KEYS)


def test_non_scalar_loss_component_is_rejected_with_its_name():
    loss = _FixedComponentsLoss({"seg": torch.zeros(2)})
    with pytest.raises(ValueError, match=r"loss_components\(\)\['seg'\] must be a scalar"):
        _trainer(_random_batches(1), loss_function=loss).run()


def test_deep_supervision_loss_as_seg_loss_gets_every_output():
    torch.manual_seed(0)
    net = _RecordingNet(_small_unet(), return_list=True)
    seg_loss = DeepSupervisionLoss(DiceCELoss(sigmoid=True), weight_mode="exp")
    data = _random_batches(1, seed=6)
    trainer = _trainer(
        data,
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.0),  # lr 0 keeps the weights for the check below
        loss_function=MaskSupLoss(seg_loss=seg_loss, weights=(1.0, 0.0, 0.0)),
        decollate=False,
    )
    trainer.run()
    with torch.no_grad():
        outputs = net(data[0]["image"])
    # MONAI's loss of the full list: the auxiliary head (all zeros, half resolution) adds its own term
    expected = DeepSupervisionLoss(DiceCELoss(sigmoid=True), weight_mode="exp")(outputs, data[0]["label"])
    assert trainer.state.output[Keys.LOSS].item() == pytest.approx(expected.item(), rel=1e-5)
    first_only = DiceCELoss(sigmoid=True)(outputs[0], data[0]["label"])
    assert abs(expected.item() - first_only.item()) > 1e-3
