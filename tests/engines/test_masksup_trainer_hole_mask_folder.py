"""Test that a HoleMaskFolder (masks from image files) works as the mask generator of MaskSupTrainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ignite.engine import Events
from PIL import Image

from monai_masksup.engines import MaskSupTrainer
from monai_masksup.transforms import HoleMaskFolder

SIZE = (24, 20)
FILL = -2.0  # images hold values in [0, 1): -2 can only come from the mask


@pytest.fixture
def mask_dir(tmp_path):
    """Three 48 x 48 mask PNGs (white = hole): a band, a square and a column of dots."""
    band, square, dots = (np.zeros((48, 48), np.uint8) for _ in range(3))
    band[10:22] = 255
    square[16:40, 4:28] = 255
    dots[::6, 30:34] = 255
    for name, mask in [("a.png", band), ("b.png", square), ("c.png", dots)]:
        Image.fromarray(mask).save(tmp_path / name)
    return tmp_path


def _batches(n: int, batch_size: int = 2) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    return [
        {
            "image": torch.rand((batch_size, 1, *SIZE), generator=g),
            "label": (torch.rand((batch_size, 1, *SIZE), generator=g) > 0.5).float(),
        }
        for _ in range(n)
    ]


def test_hole_mask_folder_drives_two_masksup_iterations_with_the_folders_masks_for_the_seed(mask_dir):
    torch.manual_seed(0)
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    data = _batches(2)
    trainer = MaskSupTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=data,
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), 0.1),
        mask_generator=HoleMaskFolder(mask_dir),
        fill_value=FILL,
        mask_seed=11,
        decollate=False,
    )
    outputs = []
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED,
        lambda engine: outputs.append({k: engine.state.output[k] for k in ("image_masked", "hole_mask", "loss")}),
    )
    weight_before = net.weight.detach().clone()
    trainer.run()

    assert trainer.state.iteration == 2 and len(outputs) == 2
    assert not torch.equal(net.weight, weight_before)  # the optimiser stepped
    # the trainer draws through the MaskGenerator call from one CPU generator seeded with mask_seed (rank 0)
    generator = torch.Generator().manual_seed(11)
    expected = HoleMaskFolder(mask_dir)
    for batch, out in zip(data, outputs):
        want = expected(2, SIZE, generator=generator)
        assert out["hole_mask"].shape == (2, 1, *SIZE) and torch.equal(out["hole_mask"], want)
        assert want.sum() > 0 and bool(torch.isfinite(out["loss"]))
        hole = want.bool().expand_as(batch["image"])
        assert torch.all(out["image_masked"][hole] == FILL)
        assert torch.equal(out["image_masked"][~hole], batch["image"][~hole])
