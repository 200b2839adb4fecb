"""RandomStates: the global generators, the data loader's order and the transforms' states, saved and restored."""

from __future__ import annotations

import io
import random

import numpy as np
import torch
from monai.data import DataLoader, Dataset
from monai.transforms import Compose, OneOf, RandCoarseDropoutd, RandFlipd, RandGaussianNoised, ScaleIntensityd

from monai_masksup.handlers.random_states import RandomStates, random_transforms


def _draws(loader=None) -> list:
    draws = [torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]]
    if loader is not None:
        draws.append([batch["image"].sum().item() for batch in loader])
    return draws


def _through_file(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)  # what a checkpoint holds must load without pickled code


def test_global_generators_continue_where_they_were_saved():
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    _draws()
    states = RandomStates()
    saved = _through_file(states.state_dict())
    expected = _draws()
    _draws()  # the run goes on: the restored states must not depend on it
    states.load_state_dict(saved)
    assert _draws() == expected


def test_loader_order_and_transform_states_continue_where_they_were_saved():
    data = [{"image": np.full((1, 4, 4), float(i), dtype=np.float32)} for i in range(8)]
    transform = Compose([RandFlipd("image", prob=0.5), RandGaussianNoised("image", prob=0.5)])
    generator = torch.Generator().manual_seed(3)
    loader = DataLoader(Dataset(data, transform), batch_size=2, shuffle=True, generator=generator, num_workers=0)
    _draws(loader)
    states = RandomStates(loader)
    saved = _through_file(states.state_dict())
    assert set(saved["data_loader"]) == {"generator", "sampler_generator"}
    assert set(saved["transforms"]) == {
        "transform", "transform.transforms.0", "transform.transforms.1", "transform.transforms.1.rand_gaussian_noise"
    }
    expected = _draws(loader)
    _draws(loader)
    states.load_state_dict(saved)
    assert _draws(loader) == expected


def test_random_transforms_are_found_at_any_depth_once():
    flip = RandFlipd("image", prob=0.5)
    dropout = RandCoarseDropoutd("image", holes=1, spatial_size=2, prob=0.5)
    chain = Compose([ScaleIntensityd("image"), OneOf([flip, dropout]), flip])
    paths = [path for path, _ in random_transforms(chain)]
    assert paths == [
        "transform",
        "transform.transforms.1",
        "transform.transforms.1.transforms.0",
        "transform.transforms.1.transforms.1",
        "transform.transforms.1.transforms.1.dropper",
    ]


def test_hole_masks_resume_exactly_with_draw_batch_one_only():
    # as the RandomStates and RandHoleMask(d) docstrings say: the masks that draw_batch > 1 keeps for later calls
    # are not random state, so a restored run draws a fresh set where the uninterrupted one used the kept masks
    from monai_masksup.transforms import RandHoleMaskd

    def run(draw_batch: int) -> tuple[DataLoader, RandomStates]:
        data = [{"image": np.ones((1, 16, 16), dtype=np.float32)} for _ in range(4)]
        transform = Compose([RandHoleMaskd("image", coverage=None, draw_batch=draw_batch)])
        transform.set_random_state(seed=5)
        loader = DataLoader(Dataset(data, transform), batch_size=1, shuffle=False, num_workers=0)
        return loader, RandomStates(loader)

    def masks_after_restore(draw_batch: int) -> tuple[list, list]:
        loader, states = run(draw_batch)
        next(iter(loader))  # one mask used: with draw_batch 2 the second one is kept for the next call
        saved = _through_file(states.state_dict())
        expected = [batch["hole_mask"] for batch in loader]
        resumed_loader, resumed_states = run(draw_batch)  # a new process, resuming from the checkpoint
        resumed_states.load_state_dict(saved)
        return expected, [batch["hole_mask"] for batch in resumed_loader]

    expected, resumed = masks_after_restore(draw_batch=1)
    assert all(torch.equal(a, b) for a, b in zip(expected, resumed))
    expected, resumed = masks_after_restore(draw_batch=2)
    assert not torch.equal(expected[0], resumed[0])
