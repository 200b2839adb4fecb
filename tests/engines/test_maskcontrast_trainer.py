"""Tests of MaskContrastTrainer: three pre-training iterations on CPU, the key network's momentum step and the
queue as extra state."""

from __future__ import annotations

import math

import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.transforms import Compose, RandFlipd, RandSpatialCropd

from monai_masksup.engines import ExtraStateOwner, MaskContrastTrainer
from monai_masksup.losses import MaskContrastLoss, PrototypeQueue
from monai_masksup.networks import EMATeacher, MaskContrastNet
from monai_masksup.transforms import MaskContrastViewsd

BATCH, QUEUE = 2, 8


def _data(n: int = 6) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    items = []
    for i in range(n):
        label = torch.zeros(1, 48, 48)
        label[:, 8 + i : 28 + i, 12:32] = 1
        items.append({"image": torch.rand(3, 48, 48, generator=g) + label, "label": label})
    return items


def _trainer(max_epochs: int = 1, epoch_length: int = 3, **kwargs):
    torch.manual_seed(0)
    views = MaskContrastViewsd(
        ["image", "label"],
        mask_key="label",
        view_transform=Compose(
            [
                RandSpatialCropd(["image", "label"], roi_size=(32, 32), random_size=False),
                RandFlipd(["image", "label"], 0.5, 1),
            ]
        ),
    )
    views.set_random_state(0)
    loader = DataLoader(Dataset(_data(), transform=views), batch_size=BATCH, shuffle=False, num_workers=0)
    network = MaskContrastNet(in_channels=3, features=(4, 4, 8, 8, 16, 4), embedding_dim=8)
    key_network = EMATeacher(network, alpha=0.999, update_buffers=False, mode="train")
    loss = MaskContrastLoss(queue=PrototypeQueue(8, QUEUE))
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    trainer = MaskContrastTrainer(
        device="cpu",
        max_epochs=max_epochs,
        epoch_length=epoch_length,
        train_data_loader=loader,
        network=network,
        optimizer=optimizer,
        loss_function=loss,
        key_network=key_network,
        **kwargs,
    )
    return trainer, network, key_network, loss


def test_three_pretraining_iterations_on_cpu():
    trainer, network, key_network, loss = _trainer()
    query_before = [p.detach().clone() for p in network.parameters()]
    key_before = [p.detach().clone() for p in key_network.teacher.parameters()]
    updates = []
    original_update = key_network.update
    key_network.update = lambda *a, **k: (updates.append(1), original_update(*a, **k))[1]
    trainer.run()
    out = trainer.state.output  # decollated: one dict per sample, as SupervisedTrainer's
    assert trainer.state.iteration == 3 and len(updates) == 3 and len(out) == BATCH
    assert math.isfinite(out[0]["loss"]) and out[0]["loss_contrastive"] > 0 and out[0]["loss_saliency"] > 0
    assert out[0]["pred"].shape == (1, 32, 32) and out[0]["key_image"].shape == (3, 32, 32)
    # 3 iterations x 2 prototypes into a queue of 8: the pointer wrapped once past 0 to 6
    assert int(loss.queue.queue_ptr) == 3 * BATCH % QUEUE
    assert any(not torch.equal(a, b) for a, b in zip(query_before, network.parameters()))
    # the key network moved by a 0.001 share only: closer to where it started than to the query network
    moved = [(k - k0).abs().max() for k, k0 in zip(key_network.teacher.parameters(), key_before)]
    assert max(moved) > 0
    for k, k0, q in zip(key_network.teacher.parameters(), key_before, network.parameters()):
        assert (k - k0).abs().max() <= (q.detach() - k0).abs().max() * 0.01 + 1e-7


def test_first_momentum_step_is_the_reference_formula():
    trainer, network, key_network, _ = _trainer(epoch_length=1)
    key_before = [p.detach().clone() for p in key_network.teacher.parameters()]
    trainer.run()
    for k, k0, q in zip(key_network.teacher.parameters(), key_before, network.parameters()):
        torch.testing.assert_close(k, 0.999 * k0 + 0.001 * q.detach(), rtol=0, atol=1e-7)


def test_key_network_stays_in_train_mode_and_gets_no_gradient():
    trainer, _, key_network, _ = _trainer(epoch_length=1)
    trainer.run()
    assert key_network.teacher.training
    assert all(p.grad is None for p in key_network.teacher.parameters())


def test_bfloat16_autocast_on_cpu_gives_a_finite_float32_loss():
    trainer, _, _, _ = _trainer(epoch_length=1, amp=True, amp_kwargs={"dtype": torch.bfloat16}, decollate=False)
    trainer.run()
    assert trainer.state.output["loss"].dtype == torch.float32 and math.isfinite(trainer.state.output["loss"].item())


def test_queue_and_key_network_are_extra_state():
    trainer, _, key_network, loss = _trainer(epoch_length=1)
    assert isinstance(trainer, ExtraStateOwner)
    state = trainer.extra_state()
    assert state["prototype_queue"] is loss.queue and state["key_network"] is key_network


def test_batch_without_key_view_is_a_clear_error():
    trainer, network, key_network, loss = _trainer()
    trainer.data_loader = [{"image": torch.rand(2, 3, 32, 32), "label": torch.zeros(2, 1, 32, 32)}]
    trainer.state.epoch_length = 1
    with pytest.raises(KeyError, match="MaskContrastViewsd"):
        trainer.run()


def test_key_network_without_update_is_refused():
    network = MaskContrastNet(in_channels=3, features=(4, 4, 8, 8, 16, 4))
    with pytest.raises(TypeError, match="update"):
        optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
        MaskContrastTrainer("cpu", 1, [], network, optimizer, MaskContrastLoss(), key_network=network)


def _fixed_batches() -> list[dict]:
    """Two batches of ready-made views (no random transform), so that a resumed run sees the same data."""
    g = torch.Generator().manual_seed(1)
    batches = []
    for shift in (0, 4):
        label = torch.zeros(BATCH, 1, 32, 32)
        label[:, :, 6 + shift : 20 + shift, 8:22] = 1
        key_label = torch.roll(label, 3, dims=3)
        batches.append(
            {
                "image": torch.rand(BATCH, 3, 32, 32, generator=g) + label,
                "label": label,
                "key_image": torch.rand(BATCH, 3, 32, 32, generator=g) + key_label,
                "key_label": key_label,
            }
        )
    return batches


def _checkpointed_run(ckpt_dir, max_epochs: int, resume: bool) -> dict:
    from monai_masksup.handlers import TrainingCheckpoint

    torch.manual_seed(0)
    network = MaskContrastNet(in_channels=3, features=(4, 4, 8, 8, 16, 4), embedding_dim=8)
    key_network = EMATeacher(network, alpha=0.9, update_buffers=False, mode="train")
    loss = MaskContrastLoss(queue=PrototypeQueue(8, QUEUE))
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    trainer = MaskContrastTrainer(
        "cpu", max_epochs, _fixed_batches(), network, optimizer, loss, key_network=key_network
    )
    TrainingCheckpoint(ckpt_dir, network, optimizer, resume=resume, overwrite=not resume).attach(trainer)
    trainer.run()
    return {"network": network.state_dict(), "key": key_network.state_dict(), "queue": loss.queue.state_dict()}


def test_resumed_run_continues_with_the_saved_key_network_and_queue(tmp_path):
    straight = _checkpointed_run(tmp_path / "straight", max_epochs=2, resume=False)
    _checkpointed_run(tmp_path / "resumed", max_epochs=1, resume=False)
    resumed = _checkpointed_run(tmp_path / "resumed", max_epochs=2, resume=True)
    for part in ("network", "key", "queue"):
        for name, value in straight[part].items():
            torch.testing.assert_close(resumed[part][name], value, rtol=0, atol=0, msg=f"{part}: {name}")
