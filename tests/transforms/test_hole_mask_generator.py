"""Tests of the batched irregular hole mask generator (coverage bins, statistics, rasterisation, seeds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_masksup.transforms import COVERAGE_PRESETS, HoleMaskGenerator
from monai_masksup.transforms.hole_mask_generator import _row_interval_min
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
    # Capsule rasterisation approximates OpenCV's: the docstring states mean 0.305 vs 0.312 at 224.
    assert abs(ratios.mean() - stats[names.index("mean")]) < 0.02
    assert abs(ratios.std() - stats[names.index("std")]) < 0.02
    for q in ("q25", "q50", "q75"):
        assert abs(np.quantile(ratios, float(q[1:]) / 100) - stats[names.index(q)]) < 0.03


def _capsule_pixels_brute_force(p0, p1, radius, spatial) -> np.ndarray:
    """Pixels whose centre is within ``radius`` of segment p0-p1, by direct distance evaluation."""
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in spatial], indexing="ij"), -1).astype(np.float64)
    p0, p1 = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
    d = p1 - p0
    t = np.clip(((grid - p0) @ d) / max(d @ d, 1e-12), 0, 1)
    dist = np.linalg.norm(grid - (p0 + t[..., None] * d), axis=-1)
    return dist <= radius


def _render_capsules(capsules, spatial) -> np.ndarray:
    gen = HoleMaskGenerator(coverage=None)
    seg = {
        "p0": torch.tensor([c[0] for c in capsules], dtype=torch.float32),
        "p1": torch.tensor([c[1] for c in capsules], dtype=torch.float32),
        "radius": torch.tensor([c[2] for c in capsules], dtype=torch.float32),
        "batch": torch.zeros(len(capsules)),
        "val0": torch.zeros(len(capsules)),
        "val1": torch.zeros(len(capsules)),
    }
    return gen._render_union(gen._spans(seg, spatial), 1, spatial)[0].numpy().astype(bool)


def test_disc_and_horizontal_capsule_cover_hand_counted_pixels():
    # Disc of radius 3 on a pixel centre: lattice points with x^2 + y^2 <= 9 (Gauss circle count) = 29.
    assert _render_capsules([((10.0, 10.0), (10.0, 10.0), 3.0)], (21, 21)).sum() == 29
    # Capsule (10, 5)-(10, 15), radius 2: rows dy = 0 -> x 3..17 (15), |dy| = 1 -> 4..16 (13), |dy| = 2 -> 5..15 (11).
    assert _render_capsules([((10.0, 5.0), (10.0, 15.0), 2.0)], (21, 21)).sum() == 15 + 2 * 13 + 2 * 11


@pytest.mark.parametrize("copies", [255, 256, 512])
def test_many_overlapping_capsules_render_as_their_union(copies):
    # 255 copies: every count fits in 8 bits; 256 and 512: a count wrapped around 256 would read as uncovered.
    capsule = ((10.0, 5.0), (10.0, 15.0), 2.0)
    empty = ((10.0, 30.0), (10.0, 30.0), 0.2)  # covers no pixel centre: an empty span in the same rows
    mask = _render_capsules([capsule] * copies + [empty] * 10, (21, 21))
    assert mask.sum() == 15 + 2 * 13 + 2 * 11
    assert mask[10, 3:18].all() and not mask[10, 18:].any()


@pytest.mark.parametrize("spatial", [(40, 36), (18, 16, 14)])
def test_capsule_rasterisation_matches_brute_force_distance(spatial):
    rng = np.random.default_rng(0)
    for _ in range(20):
        p0 = rng.uniform(-5, np.array(spatial) + 5)
        p1 = rng.uniform(-5, np.array(spatial) + 5)
        radius = rng.uniform(0.5, 6.0)
        got = _render_capsules([(tuple(p0), tuple(p1), radius)], spatial)
        want = _capsule_pixels_brute_force(p0, p1, radius, spatial)
        # Pixels exactly on the boundary may round either way in float32.
        assert (got != want).sum() <= max(2, 0.01 * want.sum())


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


@pytest.mark.parametrize("dtype", [torch.int16, torch.int32])
@pytest.mark.parametrize("width", [1, 7, 64, 100])
def test_row_interval_min_matches_per_pixel_minimum(dtype, width):
    # intervals of every length 0..width (empty: x1 < x0), partly overlapping, keys in random order
    rng = np.random.default_rng(width)
    n_rows, n = 5, 300
    row = rng.integers(0, n_rows, n)
    x0 = rng.integers(0, width + 1, n)  # x0 = width: an empty span past the last pixel
    x1 = np.minimum(x0 + rng.integers(-1, width + 1, n), width - 1)
    key = rng.integers(0, 1000, n)
    fill = 999
    want = np.full((n_rows, width), fill)
    for r, a, b, k in zip(row, x0, x1, key):
        want[r, a : b + 1] = np.minimum(want[r, a : b + 1], k)
    got = _row_interval_min(
        *(torch.as_tensor(v) for v in (row, x0, x1)), torch.as_tensor(key).to(dtype), n_rows, width, fill
    )
    assert got.dtype == dtype
    np.testing.assert_array_equal(got.numpy(), want)
