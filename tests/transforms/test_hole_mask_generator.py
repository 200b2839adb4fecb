"""Tests of the batched irregular hole mask generator (coverage bins, statistics, rasterisation, seeds)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from monai_masksup.transforms import COVERAGE_PRESETS, HoleMaskGenerator
from tests.conftest import load_reference, requires_cuda


def _hole_ratios(generator: HoleMaskGenerator, n_masks: int, spatial, seed: int = 0, batch: int = 125) -> np.ndarray:
    gen = torch.Generator().manual_seed(seed)
    ratios = [generator.gen(batch, spatial, generator=gen).flatten(1).mean(1) for _ in range(n_masks // batch)]
    return torch.cat(ratios).numpy()


def _share_in_bin(ratios: np.ndarray, lo: float, hi: float) -> float:
    return float(((ratios > lo) & (ratios <= hi)).mean())


def test_coverage_presets_are_the_paper_bins():
    assert COVERAGE_PRESETS["low"] == (0.01, 0.1)
    assert COVERAGE_PRESETS["high"] == (0.5, 0.6)


@pytest.mark.parametrize("spatial", [(64, 48), (24, 20, 16)])
def test_masks_are_binary_float_with_batch_and_channel_dims(spatial):
    masks = HoleMaskGenerator("high").gen(3, spatial, generator=torch.Generator().manual_seed(1))
    assert masks.shape == (3, 1, *spatial)
    assert masks.dtype == torch.float32
    assert set(torch.unique(masks).tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("coverage", [None, "low", (0.2, 0.3)])
def test_same_seed_gives_identical_masks_and_other_seed_differs(coverage):
    gen = HoleMaskGenerator(coverage, n_strokes=(0, 3))
    a = gen.gen(4, (96, 80), generator=torch.Generator().manual_seed(7))
    b = gen.gen(4, (96, 80), generator=torch.Generator().manual_seed(7))
    c = gen.gen(4, (96, 80), generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_low_coverage_masks_fall_in_bin():
    ratios = _hole_ratios(HoleMaskGenerator("low"), 1000, (224, 224))
    assert _share_in_bin(ratios, 0.01, 0.1) >= 0.95


def test_high_coverage_masks_fall_in_bin():
    ratios = _hole_ratios(HoleMaskGenerator("high"), 1000, (224, 224))
    assert _share_in_bin(ratios, 0.5, 0.6) >= 0.95


def test_custom_coverage_range_masks_fall_in_bin_and_spread_over_it():
    ratios = _hole_ratios(HoleMaskGenerator((0.2, 0.3)), 1000, (224, 224))
    assert _share_in_bin(ratios, 0.2, 0.3) >= 0.95
    # Targets are uniform in the bin: both halves are used.
    assert (ratios <= 0.25).mean() > 0.3 and (ratios > 0.25).mean() > 0.3


@pytest.mark.parametrize("coverage", ["low", "high", (0.2, 0.3)])
def test_3d_masks_fall_in_bin(coverage):
    lo, hi = COVERAGE_PRESETS.get(coverage, coverage) if isinstance(coverage, str) else coverage
    ratios = _hole_ratios(HoleMaskGenerator(coverage), 40, (32, 32, 24), batch=20)
    assert _share_in_bin(ratios, lo, hi) >= 0.95


def test_raw_masks_follow_pconv_hole_ratio_statistics():
    ref = load_reference("pconv_mask_stats.npz")
    row = list(ref["sizes"]).index(224)
    names = list(ref["stat_names"])
    stats = ref["hole_ratio_stats"][row]
    ratios = _hole_ratios(HoleMaskGenerator(coverage=None), 1000, (224, 224))
    # Capsule rasterisation approximates OpenCV's: the docstring states mean 0.307 vs 0.312 at 224.
    assert abs(ratios.mean() - stats[names.index("mean")]) < 0.02
    assert abs(ratios.std() - stats[names.index("std")]) < 0.02
    for q in ("q25", "q50", "q75"):
        assert abs(np.quantile(ratios, float(q[1:]) / 100) - stats[names.index(q)]) < 0.03


def test_bin_starting_at_zero_gives_non_empty_masks_up_to_its_top():
    # the 0-10 % bin of the robustness evaluation: (0, 0.1] is right-closed, so no mask is empty
    ratios = _hole_ratios(HoleMaskGenerator((0.0, 0.1)), 250, (224, 224))
    assert ((ratios > 0.0) & (ratios <= 0.1)).mean() >= 0.95


@pytest.mark.parametrize("coverage", ["medium", (0.6, 0.5), (0.0, 0.0), (0.1, 1.5), (-0.1, 0.2), (0.1,)])
def test_invalid_coverage_raises_naming_the_argument(coverage):
    with pytest.raises(ValueError, match="coverage"):
        HoleMaskGenerator(coverage)


@pytest.mark.parametrize("spatial", [(64,), (8, 8, 8, 8), (0, 16)])
def test_wrong_spatial_size_raises(spatial):
    with pytest.raises(ValueError, match="spatial_size"):
        HoleMaskGenerator().gen(1, spatial)


@requires_cuda
@pytest.mark.gpu
def test_cuda_masks_stay_on_device_and_match_cpu_generator_draws():
    gen = HoleMaskGenerator("high")
    cuda = gen.gen(4, (128, 128), device="cuda", generator=torch.Generator().manual_seed(3))
    cpu = gen.gen(4, (128, 128), device="cpu", generator=torch.Generator().manual_seed(3))
    assert cuda.device.type == "cuda"
    # Same draws, float rounding may move a few boundary pixels.
    assert (cuda.cpu() != cpu).float().mean() < 0.01
    ratios = cuda.flatten(1).mean(1)
    assert bool(((ratios > 0.5) & (ratios <= 0.6)).all())


def test_raw_masks_with_no_primitive_drawn_come_back_empty():
    # n_lines = (0, 1) with no other kinds lets a whole batch of one mask draw nothing (about every other
    # seed); such a batch has no capsule at all and must give an empty mask, not fail
    gen = HoleMaskGenerator(coverage=None, n_lines=(0, 1), n_circles=(0, 0), n_arcs=(0, 0))
    masks = [gen(1, (16, 16), generator=torch.Generator().manual_seed(seed)) for seed in range(16)]
    assert all(m.shape == (1, 1, 16, 16) for m in masks)
    assert any(not m.any() for m in masks) and any(m.any() for m in masks)


@pytest.mark.parametrize("spatial", [(16, 16, 16), (32, 32)])
def test_coverage_bin_is_met_when_every_primitive_misses_the_image(spatial):
    # one arc per mask often lies wholly outside a small volume; growth then starts from a seed point
    gen = HoleMaskGenerator((0.2, 0.3), n_lines=(0, 0), n_circles=(0, 0), n_arcs=(1, 1))
    ratios = _hole_ratios(gen, 64, spatial, batch=16)
    assert _share_in_bin(ratios, 0.2, 0.3) == 1.0


@pytest.mark.parametrize("coverage", [None, "high"])
def test_masks_are_ordinary_tensors_usable_in_autograd_and_in_place(coverage):
    # the generator works in inference mode; what it returns must not be an inference tensor
    mask = HoleMaskGenerator(coverage)(2, (48, 40), generator=torch.Generator().manual_seed(0))
    assert not mask.is_inference()
    image = torch.rand(2, 3, 48, 40, requires_grad=True)
    (image * (1 - mask)).sum().backward()
    assert torch.equal(image.grad, (1 - mask).expand(-1, 3, -1, -1))
    mask.mul_(2)  # an in-place update outside inference mode raises on an inference tensor


def test_cached_layouts_do_not_leak_between_sizes_and_are_not_pickled():
    def draw(gen, b, spatial):
        return gen(b, spatial, generator=torch.Generator().manual_seed(3))

    shared = HoleMaskGenerator(None, n_strokes=(1, 2))
    calls = [(2, (40, 36)), (3, (40, 36)), (2, (36, 40)), (2, (12, 10, 8)), (2, (40, 36))]
    for b, spatial in calls:  # one generator reused across sizes against a fresh one per call
        assert torch.equal(draw(shared, b, spatial), draw(HoleMaskGenerator(None, n_strokes=(1, 2)), b, spatial))
    restored = pickle.loads(pickle.dumps(shared))
    assert restored._layouts == {}
    assert torch.equal(draw(restored, 2, (40, 36)), draw(shared, 2, (40, 36)))


def test_changing_counts_or_coverage_after_use_draws_like_a_fresh_generator():
    reused = HoleMaskGenerator((0.2, 0.3))
    reused(2, (32, 32), generator=torch.Generator().manual_seed(0))
    reused.n_lines, reused.coverage = (1, 40), None  # the cached layout of the first call no longer fits
    fresh = HoleMaskGenerator(None, n_lines=(1, 40))
    masks = [gen(2, (32, 32), generator=torch.Generator().manual_seed(1)) for gen in (reused, fresh)]
    assert torch.equal(*masks)


def test_generator_pickled_without_layout_cache_still_draws():
    gen = HoleMaskGenerator(None)
    state = gen.__getstate__()
    del state["_layouts"]  # as pickled by versions before the cache
    old = HoleMaskGenerator.__new__(HoleMaskGenerator)
    old.__setstate__(state)
    seed = torch.Generator().manual_seed(2)
    assert torch.equal(old(2, (24, 20), generator=seed), gen(2, (24, 20), generator=torch.Generator().manual_seed(2)))
