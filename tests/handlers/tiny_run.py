"""A training run small enough for unit tests that draws from every random source a bundle run draws from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from ignite.engine import Events
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import MeanSquaredError, TensorBoardStatsHandler, ValidationHandler, from_engine
from monai.transforms import Compose, RandFlipd, RandGaussianNoised
from monai.utils import set_determinism

from monai_masksup.engines.extra_state import GeneratorState
from monai_masksup.handlers.training_checkpoint import TrainingCheckpoint

#: iterations per epoch: 12 items in batches of 4
EPOCH_LENGTH = 3


class NoisyTrainer(SupervisedTrainer):
    """A trainer that owns a seeded generator of its own, as ``MaskSupTrainer`` owns its mask generator."""

    def __init__(self, *args, noise_seed: int = 7, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.noise = torch.Generator().manual_seed(noise_seed)

    def extra_state(self) -> dict:
        return {"input_noise": GeneratorState(self.noise)}

    def _iteration(self, engine, batchdata):
        batchdata = dict(batchdata)
        image = batchdata["image"]
        batchdata["image"] = image + 0.1 * torch.randn(image.shape, generator=self.noise)
        return super()._iteration(engine, batchdata)


class Interrupt(Exception):
    """Stands for a kill in the middle of an epoch."""


def _items(rng: np.random.RandomState, n: int) -> list[dict]:
    return [
        {"image": rng.rand(1, 4, 4).astype(np.float32), "label": rng.rand(1, 4, 4).astype(np.float32)}
        for _ in range(n)
    ]


def tiny_run(
    ckpt_dir: Path,
    max_epochs: int,
    resume: bool = False,
    overwrite: bool = False,
    interrupt_at_iteration: int | None = None,
    summary_writer=None,
    num_workers: int = 0,
    **checkpoint_kwargs,
) -> dict:
    """
    Build and run a seeded training with validation, checkpointed by :class:`TrainingCheckpoint`, as a bundle's
    ``initialize`` + ``run`` would in a fresh process.

    Returns:
        ``{"network", "trainer", "validator", "checkpoint", "val_history"}``; ``val_history`` lists the
        validator's key metric per validation.
    """
    set_determinism(seed=0)
    data_rng = np.random.RandomState(123)
    train_data, val_data = _items(data_rng, 12), _items(data_rng, 4)
    transform = Compose(
        [
            RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=0),
            RandGaussianNoised(keys="image", prob=0.5, std=0.2),
        ]
    )
    train_loader = DataLoader(Dataset(train_data, transform), batch_size=4, shuffle=True, num_workers=num_workers)
    val_loader = DataLoader(Dataset(val_data), batch_size=4, shuffle=False, num_workers=0)
    network = torch.nn.Conv2d(1, 1, 3, padding=1)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.9)

    validator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=val_loader,
        network=network,
        key_val_metric={"val_mse": MeanSquaredError(output_transform=from_engine(["pred", "label"]))},
        metric_cmp_fn=lambda current, best: current < best,
    )
    val_history: list[float] = []
    validator.add_event_handler(Events.EPOCH_COMPLETED, lambda e: val_history.append(e.state.metrics["val_mse"]))
    handlers = [ValidationHandler(validator=validator, interval=1, epoch_level=True)]
    if summary_writer is not None:
        loss = from_engine(["loss"], first=True)
        handlers.append(TensorBoardStatsHandler(summary_writer=summary_writer, output_transform=loss))
    trainer = NoisyTrainer(
        device=torch.device("cpu"),
        max_epochs=max_epochs,
        train_data_loader=train_loader,
        network=network,
        optimizer=optimizer,
        loss_function=torch.nn.MSELoss(),
        train_handlers=handlers,
    )
    checkpoint = TrainingCheckpoint(
        ckpt_dir, network, optimizer, resume=resume, overwrite=overwrite, summary_writer=summary_writer,
        **checkpoint_kwargs,
    )
    checkpoint.attach(trainer, validator)
    if interrupt_at_iteration is not None:

        def _interrupt(engine):
            if engine.state.iteration == interrupt_at_iteration:
                raise Interrupt(f"interrupted at iteration {interrupt_at_iteration}")

        trainer.add_event_handler(Events.ITERATION_COMPLETED, _interrupt)
    try:
        trainer.run()
    except Interrupt:
        pass
    return {
        "network": network,
        "trainer": trainer,
        "validator": validator,
        "checkpoint": checkpoint,
        "val_history": val_history,
    }
