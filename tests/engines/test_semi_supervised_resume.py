"""A semi-supervised run interrupted mid-epoch and resumed through TrainingCheckpoint ends with the teacher of the
uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ignite.engine import Events
from monai.data import DataLoader, Dataset
from monai.losses import DiceCELoss
from monai.utils import set_determinism
from torch import nn

from monai_masksup.engines import SemiSupervisedTrainer
from monai_masksup.handlers.training_checkpoint import TrainingCheckpoint
from monai_masksup.losses import ConsistencyLoss


class _Interrupt(Exception):
    """Stands for a kill in the middle of an epoch."""


def _items(n: int, seed: int, label: bool) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        item = {"image": torch.rand((1, 16, 16), generator=g)}
        if label:
            item["label"] = (torch.rand((1, 16, 16), generator=g) > 0.5).float()
        items.append(item)
    return items


def _run(ckpt_dir: Path, max_epochs: int, resume: bool = False, interrupt_at: int | None = None) -> dict:
    """A seeded CutMix mean-teacher run (shuffled loaders, seeded masks) checkpointed every epoch."""
    set_determinism(seed=0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 1, 1))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    labelled = DataLoader(Dataset(_items(4, 0, True)), batch_size=2, shuffle=True)
    unlabelled = [DataLoader(Dataset(_items(8, 1, False)), batch_size=2, shuffle=True) for _ in range(2)]
    trainer = SemiSupervisedTrainer(
        device="cpu",
        max_epochs=max_epochs,
        train_data_loader=labelled,
        network=net,
        optimizer=optimizer,
        loss_function=DiceCELoss(sigmoid=True),
        unlabeled_data_loader=unlabelled[0],
        unlabeled_data_loader_b=unlabelled[1],
        consistency_loss=ConsistencyLoss(confidence_threshold=0.0),
        epoch_length=4,  # a multiple of the labelled loader's 2 batches
        mask_seed=0,
        decollate=False,
    )
    TrainingCheckpoint(ckpt_dir, net, optimizer, resume=resume).attach(trainer)
    if interrupt_at is not None:

        def _interrupt(engine):
            if engine.state.iteration == interrupt_at:
                raise _Interrupt()

        trainer.add_event_handler(Events.ITERATION_COMPLETED, _interrupt)
    try:
        trainer.run()
    except _Interrupt:
        pass
    return {"teacher": {k: v.clone() for k, v in trainer.teacher.state_dict().items()}, "trainer": trainer}


@pytest.mark.slow
def test_interrupted_and_resumed_run_has_the_uninterrupted_teacher(tmp_path):
    uninterrupted = _run(tmp_path / "a", max_epochs=3)
    interrupted = _run(tmp_path / "b", max_epochs=3, interrupt_at=10)  # in epoch 3, after the checkpoint of 2
    resumed = _run(tmp_path / "b", max_epochs=3, resume=True)
    assert resumed["trainer"].state.iteration == uninterrupted["trainer"].state.iteration == 12
    for key, value in uninterrupted["teacher"].items():
        assert torch.equal(resumed["teacher"][key], value), key
    # the interrupted run had moved past the checkpoint: the resumed teacher came from the file, not from it
    assert not torch.equal(interrupted["teacher"]["teacher.0.weight"], uninterrupted["teacher"]["teacher.0.weight"])
