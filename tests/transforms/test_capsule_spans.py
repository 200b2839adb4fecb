"""Tests of the exact capsule rasterisation by row spans (union and per-pixel minimum key)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_masksup.transforms.capsule_spans import capsule_row_spans, render_span_union, row_interval_min


def _capsule_pixels_brute_force(p0, p1, radius, spatial) -> np.ndarray:
    """Pixels whose centre is within ``radius`` of segment p0-p1, by direct distance evaluation."""
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in spatial], indexing="ij"), -1).astype(np.float64)
    p0, p1 = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
    d = p1 - p0
    t = np.clip(((grid - p0) @ d) / max(d @ d, 1e-12), 0, 1)
    dist = np.linalg.norm(grid - (p0 + t[..., None] * d), axis=-1)
    return dist <= radius


def _render_capsules(capsules, spatial) -> np.ndarray:
    seg = {
        "p0": torch.tensor([c[0] for c in capsules], dtype=torch.float32),
        "p1": torch.tensor([c[1] for c in capsules], dtype=torch.float32),
        "radius": torch.tensor([c[2] for c in capsules], dtype=torch.float32),
        "batch": torch.zeros(len(capsules)),
        "val0": torch.zeros(len(capsules)),
        "val1": torch.zeros(len(capsules)),
    }
    return render_span_union(capsule_row_spans(seg, spatial), 1, spatial)[0].numpy().astype(bool)


def _random_capsules(seed: int, n: int, spatial, n_batch: int) -> dict[str, torch.Tensor]:
    """``n`` capsules anywhere in the image, radius 0.5-3, spread over ``n_batch`` samples, order values 0..n."""
    rng = np.random.default_rng(seed)
    dims = len(spatial)
    return {
        "p0": torch.as_tensor(rng.uniform(0, spatial, (n, dims)), dtype=torch.float32),
        "p1": torch.as_tensor(rng.uniform(0, spatial, (n, dims)), dtype=torch.float32),
        "radius": torch.as_tensor(rng.uniform(0.5, 3.0, n), dtype=torch.float32),
        "batch": torch.as_tensor(rng.integers(0, n_batch, n)),
        "val0": torch.arange(n, dtype=torch.float32),
        "val1": torch.arange(n, dtype=torch.float32) + 1,
    }


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
    got = row_interval_min(
        *(torch.as_tensor(v) for v in (row, x0, x1)), torch.as_tensor(key).to(dtype), n_rows, width, fill
    )
    assert got.dtype == dtype
    np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("spatial", [(40, 36), (18, 16, 14)])
def test_split_capsules_render_the_same_pixels_and_interpolate_order_values(spatial):
    n = 12
    seg = _random_capsules(1, n, spatial, n_batch=2)
    whole = capsule_row_spans(seg, spatial)
    split = capsule_row_spans(seg, spatial, chunk_length=3.0)
    assert split["row"].numel() > whole["row"].numel()  # the pieces share rows at their joints
    assert torch.equal(render_span_union(split, 2, spatial), render_span_union(whole, 2, spatial))
    # a piece starts at val0 + t (val1 - val0) with t in [0, 1): every value stays inside its capsule's range
    assert torch.equal(whole["value"], whole["value"].floor())
    assert (split["value"] >= 0).all() and (split["value"] < n).all() and (split["value"] != split["value"].floor()).any()
    assert capsule_row_spans(seg, spatial, with_values=False)["value"] is None


@pytest.mark.parametrize("spatial", [(6, 5), (4, 3, 5)])
def test_only_unused_capsules_render_an_empty_mask(spatial):
    # Every capsule unused (radius < 0): no spans and an empty mask, not a crash in the CPU uint8 guard
    # (bincount of no capsules is empty, and its .max() raises).
    dims = len(spatial)
    seg = {
        "p0": torch.full((2, dims), 2.0),
        "p1": torch.full((2, dims), 3.0),
        "radius": torch.tensor([-1.0, -1.0]),
        "batch": torch.tensor([0, 1]),
        "val0": torch.zeros(2),
        "val1": torch.ones(2),
    }
    spans = capsule_row_spans(seg, spatial)
    assert spans["row"].numel() == 0
    assert not render_span_union(spans, 2, spatial).any()



@pytest.mark.parametrize(
    "capsule, spatial",
    [
        (((10.0, 5.0), (10.0, 15.0), 2.0), (21, 21)),  # along the rows, rows exactly r away
        (((5.0, 10.0), (15.0, 10.0), 3.0), (21, 21)),  # across the rows
        (((4.0, 4.0), (12.0, 12.0), 2.0), (17, 17)),  # diagonal
        (((8.0, 8.0), (8.0, 8.0), 4.0), (17, 17)),  # disc
        (((5.0, 5.0, 2.0), (5.0, 5.0, 12.0), 2.0), (11, 11, 15)),  # 3D along the rows
        (((2.0, 5.0, 5.0), (9.0, 5.0, 5.0), 2.0), (12, 11, 11)),  # 3D across the rows
        (((5.0, 5.0, 5.0), (5.0, 5.0, 5.0), 3.0), (11, 11, 11)),  # ball
        (((5.0, 5.0, 2.0), (5.0, 5.001, 12.0), 2.5), (11, 11, 15)),  # 3D almost along the rows
        (((10.0, 5.0), (10.001, 15.0), 2.5), (21, 21)),  # almost along the rows
    ],
)
def test_axis_aligned_integer_capsules_match_brute_force_exactly(capsule, spatial):
    # integer geometry puts pixel centres exactly on the boundary (distance = r): they belong to the capsule
    got = _render_capsules([capsule], spatial)
    want = _capsule_pixels_brute_force(*capsule, spatial)
    assert (got != want).sum() == 0


@pytest.mark.parametrize(
    "capsule, spatial",
    [
        (((4.0, 4.0, 4.0), (3.0, 3.0, 4.0), 3.0), (9, 9, 9)),  # pixel (1, 5, 3) is exactly 3 from the end (3, 3, 4)
        (((12.0, 9.0, 13.0), (3.0, 5.0, 9.0), 3.0), (16, 18, 20)),
        (((-2.0, 2.0, 11.0), (5.0, 13.0, 7.0), 6.0), (16, 18, 20)),
    ],
)
def test_3d_oblique_integer_capsules_keep_end_ball_boundary_pixels(capsule, spatial):
    # In 3D, r_row^2 - u^2 at an end (t = 0 or 1) is formed with the
    # irrational e_par = e . d_lead / |d_lead|, so an end-ball pixel exactly r away (distance^2 an integer)
    # rounds out, e.g. row (1, 5) of the first capsule gave lo = 3.0000002 and dropped x = 3.
    got = _render_capsules([capsule], spatial)
    want = _capsule_pixels_brute_force(*capsule, spatial)
    assert (got != want).sum() == 0


@pytest.mark.parametrize("spatial", [(20, 18), (8, 7, 9)])
def test_capsules_that_require_grad_give_the_same_spans_without_gradients(spatial):
    seg = _random_capsules(4, 10, spatial, n_batch=1)
    plain = capsule_row_spans(seg, spatial)
    tracked = capsule_row_spans({k: v.clone().requires_grad_(v.is_floating_point()) for k, v in seg.items()}, spatial)
    for key in ("row", "x0", "x1", "value"):
        assert torch.equal(tracked[key], plain[key]) and not tracked[key].requires_grad


@pytest.mark.parametrize("spatial", [(12, 10), (6, 12, 10)])
def test_capsules_beside_the_image_get_no_spans_and_edge_pixels_are_kept(spatial):
    # Capsules wholly left or right of the image are dropped before their rows are enumerated; one that reaches
    # a border pixel exactly (distance = r) keeps it.
    lead = (5.0,) * (len(spatial) - 1)
    width = spatial[-1]
    beside = [((*lead, -2.01), (*lead, -2.01), 2.0), ((*lead, width + 1.5), (*lead, width + 3.0), 2.4)]
    seg = {
        "p0": torch.tensor([c[0] for c in beside]),
        "p1": torch.tensor([c[1] for c in beside]),
        "radius": torch.tensor([c[2] for c in beside]),
        "batch": torch.zeros(2),
    }
    assert capsule_row_spans(seg, spatial, with_values=False)["row"].numel() == 0
    touching = [((*lead, -2.0), (*lead, -3.0), 2.0), ((*lead, width + 1.0), (*lead, width + 1.0), 2.0)]
    got = _render_capsules(touching, spatial)
    want = np.zeros(spatial, bool)
    row = tuple(int(c) for c in lead)
    want[row + (0,)] = want[row + (width - 1,)] = True
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("spatial", [(40, 36), (18, 16, 14)])
@pytest.mark.parametrize("float_indices", [True, False])
def test_union_cells_and_the_float32_index_path_give_the_same_spans(spatial, float_indices, monkeypatch):
    # 2D batches below 2^24 pixels form span, row and pixel indices in float32; the int64 path (3D, or forced
    # here by a zero limit) must give the same spans, and `union_cells` the same difference-array cells.
    from monai_masksup.transforms import capsule_spans

    seg = _random_capsules(5, 40, spatial, n_batch=3)
    seg["radius"][::7] = -1.0  # unused capsules among them
    if not float_indices:
        monkeypatch.setattr(capsule_spans, "_FLOAT_INDEX_LIMIT", 0)
    spans = capsule_row_spans(seg, spatial, chunk_length=5.0)
    cells = capsule_row_spans(seg, spatial, chunk_length=5.0, union_cells=True)
    assert set(cells) == {"cells", "value", "max_per_row"} and cells["cells"].dtype == torch.int64
    width = spatial[-1]
    want = torch.stack([spans["row"] * width + spans["x0"], spans["row"] * width + spans["x1"] + 1])
    assert torch.equal(cells["cells"], want)
    assert torch.equal(cells["value"], spans["value"])
    assert torch.equal(render_span_union(cells, 3, spatial), render_span_union(spans, 3, spatial))
    monkeypatch.undo()
    reference = capsule_row_spans(seg, spatial, chunk_length=5.0)
    for key in ("row", "x0", "x1", "value"):
        assert torch.equal(spans[key], reference[key]), key


def test_tangent_row_of_a_segment_almost_along_the_rows_stays_one_pixel():
    # |d_y| = 4.3e-6: the t range of a row is about +-7e5 wide, whose last bit (0.0625) used to be able to move
    # the end of the tangent row (exactly r from the end (3, 19)) by 0.0625 |dx| = 7 pixels.
    p0, p1, radius, spatial = (3.0, 19.0), (3.000004291534424, -99.84916687011719), 3.0, (17, 64)
    got = _render_capsules([(p0, p1, radius)], spatial)
    assert np.flatnonzero(got[0]).tolist() == [19]
    want = _capsule_pixels_brute_force(p0, p1, radius, spatial)
    assert (got != want).sum() == 0


@pytest.mark.parametrize("x", [-5e-7, 9 + 5e-7])
def test_capsules_a_rounding_error_beside_the_image_are_kept_like_any_other(x):
    # A point (radius 0) 5e-7 px beside the first or last column: within the formula's 1e-6 tolerance, as in
    # the middle of the image, so the culling must not drop it.
    got = _render_capsules([((3.0, x), (3.0, x), 0.0)], (7, 10))
    inside = _render_capsules([((3.0, 4 + 5e-7), (3.0, 4 + 5e-7), 0.0)], (7, 10))
    assert got.sum() == inside.sum() == 1 and got[3, round(x)]


def test_batch_size_argument_gives_the_same_spans():
    seg = _random_capsules(6, 30, (30, 40), n_batch=4)
    plain = capsule_row_spans(seg, (30, 40), union_cells=True)
    given = capsule_row_spans(seg, (30, 40), union_cells=True, batch_size=4)
    assert torch.equal(plain["cells"], given["cells"]) and torch.equal(plain["value"], given["value"])


@pytest.mark.parametrize("spatial", [(5, 6), (4, 5, 6)])
@pytest.mark.parametrize("union_cells", [False, True])
def test_no_capsules_at_all_give_no_spans(spatial, union_cells):
    dims = len(spatial)
    seg = {"p0": torch.zeros(0, dims), "p1": torch.zeros(0, dims), "radius": torch.zeros(0), "batch": torch.zeros(0)}
    spans = capsule_row_spans(seg, spatial, with_values=False, union_cells=union_cells)
    assert (spans["cells"] if union_cells else spans["row"]).numel() == 0
    assert not render_span_union(spans, 1, spatial).any()
