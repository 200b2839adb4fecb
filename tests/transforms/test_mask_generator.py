"""Tests that HoleMaskGenerator, BoxMaskGenerator and HoleMaskFolder meet the MaskGenerator protocol, and that
RandHoleMask(d) masks with any of them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from monai_masksup.transforms import (
    BoxMaskGenerator,
    HoleMaskFolder,
    HoleMaskGenerator,
    MaskGenerator,
    RandHoleMask,
    RandHoleMaskd,
    check_mask_generator,
)
from tests.conftest import requires_cuda


@pytest.fixture
def mask_dir(tmp_path):
    """Three 64 x 64 mask PNGs: a white (= hole) band, a white square and a white half."""
    for name, rows, cols in [("0.png", slice(10, 20), slice(None)), ("1.png", slice(8, 40), slice(8, 40))]:
        mask = np.zeros((64, 64), np.uint8)
        mask[rows, cols] = 255
        Image.fromarray(mask).save(tmp_path / name)
    half = np.zeros((64, 64), np.uint8)
    half[:, 32:] = 255
    Image.fromarray(half).save(tmp_path / "2.png")
    return tmp_path


GENERATORS = {
    "hole": lambda _: HoleMaskGenerator("high"),
    "box": lambda _: BoxMaskGenerator((0.2, 0.6), n_boxes=2),
    "folder": lambda folder: HoleMaskFolder(folder),
}


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_each_generator_is_a_mask_generator_with_binary_float_batches_on_the_device(kind, mask_dir):
    gen = GENERATORS[kind](mask_dir)
    assert isinstance(gen, MaskGenerator) and check_mask_generator(gen) is gen
    masks = gen(3, (40, 36), device=torch.device("cpu"), generator=torch.Generator().manual_seed(0))
    assert isinstance(masks, torch.Tensor) and masks.shape == (3, 1, 40, 36)
    assert masks.dtype == torch.float32 and masks.device.type == "cpu"
    assert set(masks.unique().tolist()) <= {0.0, 1.0} and masks.sum() > 0


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_same_generator_seed_gives_the_same_masks_and_another_seed_others(kind, mask_dir):
    def draw(seed):
        return GENERATORS[kind](mask_dir)(4, (32, 32), generator=torch.Generator().manual_seed(seed))

    assert torch.equal(draw(5), draw(5))
    assert not torch.equal(draw(5), draw(6))


@requires_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_each_generator_draws_on_cuda_from_a_cpu_generator(kind, mask_dir):
    masks = GENERATORS[kind](mask_dir)(2, (32, 32), device="cuda", generator=torch.Generator().manual_seed(0))
    assert masks.device.type == "cuda" and masks.shape == (2, 1, 32, 32) and masks.dtype == torch.float32


def test_a_non_callable_mask_generator_is_refused_naming_the_argument():
    assert not isinstance("high", MaskGenerator)
    with pytest.raises(TypeError, match="RandHoleMask: mask_generator must be a MaskGenerator.*str"):
        RandHoleMask(mask_generator="high")
    with pytest.raises(TypeError, match="mask_generator must be a MaskGenerator"):
        RandHoleMaskd(mask_generator=3)


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_rand_hole_maskd_masks_with_any_generator_through_a_generator_seeded_from_its_state(kind, mask_dir):
    gen = GENERATORS[kind](mask_dir)
    img = torch.full((2, 32, 32), 3.0)
    transform = RandHoleMaskd(keys="image", mask_generator=gen, fill_value=-1.0).set_random_state(4)
    out = transform({"image": img})
    # the transform's random state: the prob draw, then the seed of the generator's draw
    state = np.random.RandomState(4)
    state.rand()
    seed = int(state.randint(0, 2**31 - 1))
    want = GENERATORS[kind](mask_dir)(1, (32, 32), generator=torch.Generator().manual_seed(seed))[0]
    assert torch.equal(out["hole_mask"], want)
    hole = want[0] == 1
    assert torch.all(out["image_masked"][:, hole] == -1.0) and torch.all(out["image_masked"][:, ~hole] == 3.0)


def test_draw_batch_uses_the_batched_draw_of_a_folder_in_turn(mask_dir):
    img = torch.ones(1, 24, 24)
    transform = RandHoleMask(mask_generator=HoleMaskFolder(mask_dir), draw_batch=3, return_mask=True)
    transform.set_random_state(2)
    got = [transform(img)[1] for _ in range(3)]
    state = np.random.RandomState(2)
    state.rand()
    seed = int(state.randint(0, 2**31 - 1))
    want = HoleMaskFolder(mask_dir)(3, (24, 24), generator=torch.Generator().manual_seed(seed))
    for k in range(3):
        assert torch.equal(got[k], want[k])
