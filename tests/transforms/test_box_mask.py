"""Tests for the CutMix / Cutout box masks (``monai_masksup.transforms.box_mask``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_masksup.transforms import BoxMaskGenerator, RandBoxMask, RandBoxMaskd
from tests.conftest import load_reference

REF = "cutmix_consistency.npz"


def _generator_from_settings(settings: np.ndarray) -> tuple[BoxMaskGenerator, tuple[int, int]]:
    prop_lo, prop_hi, n_boxes, invert, height, width = settings
    gen = BoxMaskGenerator((prop_lo, prop_hi), n_boxes=int(n_boxes), invert=bool(invert))
    return gen, (int(height), int(width))


# ----------------------------------------------------------------------------- reference geometry
@pytest.mark.parametrize("case", ["a", "b", "c"])
def test_from_draws_reproduces_reference_masks_exactly(case):
    ref = load_reference(REF)
    gen, size = _generator_from_settings(ref[f"boxexact_{case}_settings"])
    masks = gen.from_draws(
        torch.from_numpy(ref[f"boxexact_{case}_rng_props"]),
        torch.from_numpy(ref[f"boxexact_{case}_rng_aspect_u"]),
        torch.from_numpy(ref[f"boxexact_{case}_rng_pos_u"]),
        size,
    )
    expected = ref[f"boxexact_{case}_masks"]
    assert masks.dtype == torch.float32
    assert masks.shape == expected.shape
    np.testing.assert_array_equal(masks.numpy(), expected)


def test_zero_proportion_gives_no_box_with_background_one():
    ref = load_reference(REF)
    assert ref["boxexact_c_rng_props"][0, 0] == 0.0  # the case pins p == 0 on mask 0
    gen, size = _generator_from_settings(ref["boxexact_c_settings"])
    draws = (ref["boxexact_c_rng_props"], ref["boxexact_c_rng_aspect_u"], ref["boxexact_c_rng_pos_u"])
    masks = gen.from_draws(*draws, size)
    assert torch.all(masks[0] == 1.0)
    assert torch.isfinite(masks).all()


def test_numpy_draws_reproduce_training_script_mix_and_cut_masks():
    # the reference drew mix_mask then cut_mask from one RandomState(1235), batch 2, 16x16
    ref = load_reference(REF)
    rng = np.random.RandomState(1235)
    mix = BoxMaskGenerator(0.5)
    cut = BoxMaskGenerator((0.0, 1.0))
    mix_masks = mix.from_draws(*mix.draw_uniforms_numpy(2, 2, rng), (16, 16))
    cut_masks = cut.from_draws(*cut.draw_uniforms_numpy(2, 2, rng), (16, 16))
    np.testing.assert_array_equal(mix_masks.numpy(), ref["mix_mask"])
    np.testing.assert_array_equal(cut_masks.numpy(), ref["cut_mask"])


def _stat_generator(ref: dict, index: int) -> tuple[BoxMaskGenerator, int]:
    gen = BoxMaskGenerator(
        (float(ref["box_cfg_prop_lo"][index]), float(ref["box_cfg_prop_hi"][index])),
        n_boxes=int(ref["box_cfg_n_boxes"][index]),
    )
    return gen, int(ref["box_cfg_size"][index])


@pytest.mark.parametrize("index", [0, 2, 4, 6])
def test_numpy_draws_reproduce_reference_mask_mean_samples(index):
    # the reference's 2000 masks came from RandomState(2020 + index) in chunks of 250
    ref = load_reference(REF)
    gen, size = _stat_generator(ref, index)
    rng = np.random.RandomState(int(ref["box_seed_base"]) + index)
    chunk = int(ref["box_chunk"])
    means = torch.cat(
        [gen.from_draws(*gen.draw_uniforms_numpy(chunk, 2, rng), (size, size)).mean(dim=(1, 2, 3)) for _ in range(8)]
    )
    np.testing.assert_array_equal(means.numpy(), ref["box_mask_mean_samples"][index])


@pytest.mark.parametrize("index, n_test", [(0, 1000), (1, 250), (2, 1000), (3, 250), (4, 1000), (6, 1000), (7, 250)])
def test_torch_masks_match_reference_statistics(index, n_test):
    ref = load_reference(REF)
    gen, size = _stat_generator(ref, index)
    masks = gen(n_test, (size, size), generator=torch.Generator().manual_seed(100 + index))
    assert masks.shape == (n_test, 1, size, size)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    observed = {
        "mask_mean": masks.mean(dim=(1, 2, 3)),
        "row_coverage": masks.amax(dim=3).mean(dim=(1, 2)),
        "col_coverage": masks.amax(dim=2).mean(dim=(1, 2)),
    }
    metrics = [str(m) for m in ref["box_stat_metrics"]]
    names = [str(n) for n in ref["box_stat_names"]]
    bound = np.sqrt(1.0 / int(ref["box_n_masks"]) + 1.0 / n_test)
    for metric, values in observed.items():
        mean = ref["box_stats"][index, metrics.index(metric), names.index("mean")]
        std = ref["box_stats"][index, metrics.index(metric), names.index("std")]
        assert abs(values.mean().item() - mean) <= 4 * std * bound, metric
    if ref["box_cfg_prop_lo"][index] != ref["box_cfg_prop_hi"][index]:
        from scipy.stats import ks_2samp

        assert ks_2samp(observed["mask_mean"].numpy(), ref["box_mask_mean_samples"][index]).pvalue > 1e-3


# ----------------------------------------------------------------------------- hand-made geometry
def _square_boxes(n_boxes: int, pos_u: list[list[float]], **kwargs) -> torch.Tensor:
    # area 0.5 per mask, square boxes: side = sqrt(0.5) * sqrt(1 / 2) * 8 = 4 pixels when n_boxes = 2
    gen = BoxMaskGenerator(0.5, n_boxes=n_boxes, random_aspect_ratio=False, **kwargs)
    props = torch.full((1, n_boxes), 0.5, dtype=torch.float64)
    pos = torch.tensor([pos_u], dtype=torch.float64)
    return gen.from_draws(props, None, pos, (8, 8))[0, 0]


def test_overlapping_boxes_combine_by_xor():
    # box 1 at start round(4 * 0) = 0, box 2 at round(4 * 0.5) = 2, both 4x4: overlap rows/cols 2-3
    mask = _square_boxes(2, [[0.0, 0.0], [0.5, 0.5]])
    expected = np.zeros((8, 8), dtype=np.float32)
    expected[0:4, 0:4] = 1
    expected[2:6, 2:6] = 1
    expected[2:4, 2:4] = 0
    np.testing.assert_array_equal(mask.numpy(), expected)


def test_invert_false_swaps_polarity():
    boxes = _square_boxes(2, [[0.0, 0.0], [0.5, 0.5]])
    background = _square_boxes(2, [[0.0, 0.0], [0.5, 0.5]], invert=False)
    np.testing.assert_array_equal(background.numpy(), 1.0 - boxes.numpy())
    assert background[7, 7] == 1.0 and background[0, 0] == 0.0


def test_box_at_far_border_stays_inside_without_wrapping():
    # one 6x6 box (round(sqrt(0.5) * 8) = 6) at start round(2 * 0.99) = 2: rows/cols 2-7
    gen = BoxMaskGenerator(0.5, random_aspect_ratio=False)
    mask = gen.from_draws(torch.tensor([[0.5]]), None, torch.tensor([[[0.99, 0.99]]]), (8, 8))[0, 0]
    expected = np.zeros((8, 8), dtype=np.float32)
    expected[2:8, 2:8] = 1
    np.testing.assert_array_equal(mask.numpy(), expected)


def test_centred_box_is_clipped_not_wrapped_when_out_of_bounds_allowed():
    # within_bounds=False: centre round(8 * 0.01) = 0, side 6 -> rows/cols -3..3 clipped to 0..2
    gen = BoxMaskGenerator(0.5, random_aspect_ratio=False, within_bounds=False)
    mask = gen.from_draws(torch.tensor([[0.5]]), None, torch.tensor([[[0.01, 0.01]]]), (8, 8))[0, 0]
    expected = np.zeros((8, 8), dtype=np.float32)
    expected[0:3, 0:3] = 1
    np.testing.assert_array_equal(mask.numpy(), expected)


def test_random_boxes_touching_border_are_contiguous():
    masks = BoxMaskGenerator((0.3, 0.9))(300, (12, 17), generator=torch.Generator().manual_seed(3))
    for mask in masks[:, 0]:
        rows = torch.nonzero(mask.amax(dim=1)).flatten()
        cols = torch.nonzero(mask.amax(dim=0)).flatten()
        # one solid rectangle: its bounding box is full (a wrapped box would leave a gap)
        assert mask.sum() == len(rows) * len(cols)
        assert rows.max() - rows.min() + 1 == len(rows)
        assert cols.max() - cols.min() + 1 == len(cols)


# ----------------------------------------------------------------------------- 3D
def test_3d_masks_are_single_cuboids_with_mean_volume_fraction():
    gen = BoxMaskGenerator(0.5)
    masks = gen(200, (32, 24, 20), generator=torch.Generator().manual_seed(5))
    assert masks.shape == (200, 1, 32, 24, 20) and masks.dtype == torch.float32
    sides = []
    for mask in masks[:, 0]:
        extent = [int(mask.amax(dim=tuple(a for a in range(3) if a != d)).sum()) for d in range(3)]
        assert mask.sum() == extent[0] * extent[1] * extent[2]  # a solid cuboid
        sides.append(extent)
    # every box volume is p = 0.5 up to rounding each side (at least 10 voxels, so < 20 % off)
    fractions = masks.mean(dim=(1, 2, 3, 4))
    assert torch.all((fractions - 0.5).abs() < 0.2)
    assert abs(fractions.mean().item() - 0.5) < 0.01
    # random aspect ratio: sides vary from mask to mask
    assert len({tuple(s) for s in sides}) > 20


def test_3d_random_aspect_sides_multiply_to_volume_fraction():
    gen = BoxMaskGenerator(0.3)
    start, stop = gen.box_bounds(
        torch.tensor([[0.3]], dtype=torch.float64),
        torch.tensor([[[0.7, 0.2]]], dtype=torch.float64),
        torch.zeros(1, 1, 3, dtype=torch.float64),
        (1000, 1000, 1000),
    )
    # weights (0.2, 0.5, 0.3) -> sides 0.3 ** w, rounded at 1000 voxels per axis
    expected = np.round(np.array([0.3**0.2, 0.3**0.5, 0.3**0.3]) * 1000)
    np.testing.assert_array_equal((stop - start)[0, 0].numpy(), expected)


# ----------------------------------------------------------------------------- determinism + transforms
def test_same_seed_same_masks_different_seed_different_masks():
    gen = BoxMaskGenerator((0.0, 1.0), n_boxes=3)
    first = gen(4, (32, 32), generator=torch.Generator().manual_seed(11))
    again = gen(4, (32, 32), generator=torch.Generator().manual_seed(11))
    other = gen(4, (32, 32), generator=torch.Generator().manual_seed(12))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_rand_box_mask_keeps_array_type_and_is_seeded():
    image = np.random.rand(3, 20, 24).astype(np.float32)
    transform = RandBoxMask((0.2, 0.8)).set_random_state(seed=7)
    first = transform(image)
    assert isinstance(first, np.ndarray) and first.shape == (1, 20, 24) and first.dtype == np.float32
    assert 0 < first.sum() < first.size
    again = RandBoxMask((0.2, 0.8)).set_random_state(seed=7)(image)
    np.testing.assert_array_equal(first, again)
    as_tensor = RandBoxMask((0.2, 0.8)).set_random_state(seed=7)(torch.from_numpy(image))
    assert isinstance(as_tensor, torch.Tensor)
    np.testing.assert_array_equal(as_tensor.numpy(), first)
    meta = RandBoxMask((0.2, 0.8)).set_random_state(seed=7)(MetaTensor(torch.from_numpy(image)))
    assert isinstance(meta, MetaTensor)
    volume = RandBoxMask(0.5)(torch.zeros(1, 8, 10, 12))
    assert volume.shape == (1, 8, 10, 12)


def test_rand_box_mask_prob_zero_gives_background_only():
    image = torch.zeros(1, 16, 16)
    assert torch.all(RandBoxMask(0.5, prob=0.0)(image) == 0.0)
    assert torch.all(RandBoxMask(0.5, invert=False, prob=0.0)(image) == 1.0)


def test_rand_box_maskd_writes_mask_of_first_key_size():
    data = {"image": torch.rand(3, 16, 20), "label": torch.zeros(1, 16, 20)}
    out = RandBoxMaskd(keys=["image", "label"], mask_key="cut").set_random_state(seed=3)(data)
    assert set(out) == {"image", "label", "cut"}
    assert out["cut"].shape == (1, 16, 20)
    assert out["image"] is data["image"]
    array = RandBoxMask().set_random_state(seed=3)
    np.testing.assert_array_equal(out["cut"].numpy(), array(data["image"]).numpy())
    with pytest.raises(ValueError, match="spatial size"):
        RandBoxMaskd(keys=["image", "label"])({"image": torch.rand(3, 16, 20), "label": torch.zeros(1, 16, 16)})


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"prop_range": -0.1}, "prop_range"),
        ({"prop_range": 1.5}, "prop_range"),
        ({"prop_range": (0.6, 0.4)}, "prop_range"),
        ({"prop_range": (0.1, 0.2, 0.3)}, "prop_range"),
        ({"n_boxes": 0}, "n_boxes"),
    ],
)
def test_invalid_arguments_raise_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        BoxMaskGenerator(**kwargs)
    with pytest.raises(ValueError, match=name):
        RandBoxMask(**kwargs)


@pytest.mark.parametrize("spatial_size", [(16,), (2, 4, 4, 4)])
def test_spatial_rank_other_than_2_or_3_raises(spatial_size):
    with pytest.raises(ValueError, match="spatial_size"):
        BoxMaskGenerator()(2, spatial_size)
    with pytest.raises(ValueError, match=r"img must be channel-first \(C, H, W\) or \(C, H, W, D\)"):
        RandBoxMask()(np.zeros((1, *spatial_size), dtype=np.float32))
    with pytest.raises(ValueError, match=r"data\['image'\] must be channel-first"):
        RandBoxMaskd(keys="image")({"image": np.zeros((1, *spatial_size), dtype=np.float32)})


def test_empty_image_side_raises_naming_the_image():
    with pytest.raises(ValueError, match="spatial size of img must be positive"):
        RandBoxMask()(np.zeros((1, 0, 4), dtype=np.float32))


def test_rand_box_maskd_not_applied_stores_a_mask_without_a_box_of_the_image_type():
    image = np.zeros((2, 12, 10), np.float32)
    out = RandBoxMaskd(keys="image", prob=0.0)({"image": image})
    assert isinstance(out["box_mask"], np.ndarray) and out["box_mask"].dtype == np.float32
    assert out["box_mask"].shape == (1, 12, 10) and not out["box_mask"].any()
    inverted = RandBoxMaskd(keys="image", invert=False, prob=0.0)({"image": image})
    assert (inverted["box_mask"] == 1.0).all()
