"""
Exact rasterisation of capsules (thick segments with round ends; discs and balls are capsules of length 0) as
pixel intervals per image row, and the two renderings the hole-mask generator needs: their union, and per pixel
the smallest key of the intervals covering it.

Every capsule is cut into one interval per row of its bounding box (rows run along the last axis), so the
work grows with the stroke length and thickness, never with (pixels x capsules), and there is no Python loop
over capsules or samples; the same code runs on any device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["capsule_row_spans", "render_span_union", "row_interval_min"]

# Offset that pushes an empty piece of a row interval beyond any image (lo + _FAR > hi - _FAR).
_FAR = 1e9


def _take(column: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``column.flatten()[index]`` by ``index_select``, which is several times cheaper than advanced indexing."""
    return column.reshape(-1).index_select(0, index)


def _far(x: torch.Tensor) -> torch.Tensor:
    """
    ``_FAR`` where ``x < 0`` and 0 where ``x >= 0``, in two cheap passes instead of a comparison and a select.
    Exact for ``x <= -1e-29`` (times -3e38 is beyond ``_FAR``); ``x`` here is a difference of pixel-sized
    float32 values, never a non-zero that small.
    """
    return (x * -3e38).clamp_(0, _FAR)


def _half_width(square: torch.Tensor) -> torch.Tensor:
    """
    ``sqrt(square)`` where the square is >= 0 and ``-_FAR`` (an empty interval) where it is negative, in four
    cheap passes and away from ``sqrt(0)`` (which, like the root of a negative, is several times slower on
    CPU): a negative square becomes 1e-12 and a non-negative one at least 2e-12, so a threshold between their
    roots (1e-6 and 1.41e-6) tells them apart.
    """
    root = square.clamp(min=-1e-12).add_(2e-12).sqrt_()
    return F.threshold_(root, 1.2e-6, -_FAR)


def row_interval_min(
    row: torch.Tensor, x0: torch.Tensor, x1: torch.Tensor, key: torch.Tensor, n_rows: int, width: int, fill: int
) -> torch.Tensor:
    """
    Per pixel of ``(n_rows, width)``, the smallest ``key`` of the intervals ``[x0, x1]`` of its row covering it,
    ``fill`` where none does (keys above ``fill`` count as ``fill``); the result has ``key``'s dtype. Each
    interval is covered by two power-of-two blocks ``[x0, x0 + 2^k)`` and ``(x1 - 2^k, x1]`` with
    ``2^k <= length < 2^(k+1)``, whose keys are scattered (min) into a table per block size; the tables are
    then pushed down, size 2^k into 2^(k-1) at offsets 0 and 2^(k-1). The work is a fixed number of passes
    over the image (two per block size), not one write per covered pixel. Empty intervals change nothing.
    """
    n_levels = int(width).bit_length()  # block sizes 1, 2, ..., 2^floor(log2(width))
    length = x1 - x0 + 1
    level = (torch.frexp(length.clamp(min=1).to(torch.float32)).exponent - 1).long()
    key = torch.where(length > 0, key, fill)
    start = x0.clamp(0, width - 1)
    end = (x1 + 1 - (1 << level)).clamp(0, width - 1)
    base = (level * n_rows + row) * width
    tables = torch.full((n_levels, n_rows, width), fill, dtype=key.dtype, device=key.device)
    tables.view(-1).scatter_reduce_(0, torch.cat([base + start, base + end]), key.repeat(2), reduce="amin")
    for lev in range(n_levels - 1, 0, -1):
        half = 1 << (lev - 1)
        lower, upper = tables[lev - 1], tables[lev]
        torch.minimum(lower, upper, out=lower)
        torch.minimum(lower[:, half:], upper[:, : width - half], out=lower[:, half:])
    return tables[0]


def capsule_row_spans(
    seg: dict[str, torch.Tensor], spatial: tuple[int, ...], chunk_length: float | None = None, with_values: bool = True
) -> dict[str, torch.Tensor | int | None]:
    """
    Intersect every capsule (all points within ``radius`` of the segment ``p0``-``p1``) with the image rows
    (lines along the last axis) of its bounding box: one pixel interval per capsule and row, computed exactly.

    Args:
        seg: capsules as columns: ``p0``, ``p1`` (N, D) in pixel coordinates (channel-free, D = 2 or 3),
            ``radius`` (N,) (negative = unused), ``batch`` (N,) sample index, ``val0``, ``val1`` (N,) order
            values at both ends (interpolated along split capsules).
        spatial: (H, W) or (H, W, D) of the masks.
        chunk_length: split capsules longer than this into exact sub-capsules (``None``: no splitting).
        with_values: also return the order value of every span (``value`` is ``None`` otherwise).

    Returns:
        per span: ``row`` (flat index of (batch, leading coordinates)), ``x0``, ``x1`` (inclusive pixel range on
        the last axis; empty when ``x1 < x0``) and ``value`` (order value at the start of the (sub-)capsule);
        and ``max_per_row``, an upper bound of the spans in one row (the most capsules of one sample; computed
        on CPU only, where it picks the uint8 union, and ``None`` elsewhere to spare a device sync).
    """
    dims = len(spatial)
    q0 = [c.contiguous() for c in seg["p0"].unbind(1)]
    q1 = [c.contiguous() for c in seg["p1"].unbind(1)]
    radius, value, batch = seg["radius"], seg["val0"], seg["batch"]
    device = radius.device
    chunk = chunk_length
    if chunk is not None:
        # Splitting into sub-capsules is exact: their union is the capsule.
        delta = [b - a for a, b in zip(q0, q1)]
        length = torch.sqrt(sum(c * c for c in delta))
        n_chunk = torch.ceil(length / chunk).clamp(min=1).long()
        seg_id = torch.repeat_interleave(n_chunk)
        first = torch.cumsum(n_chunk, 0) - n_chunk
        m = _take(n_chunk.float(), seg_id)
        t0 = (torch.arange(seg_id.numel(), device=device) - _take(first, seg_id)).float() / m
        t1 = t0 + 1 / m
        q0, q1 = (
            [_take(a, seg_id) + t * _take(dd, seg_id) for a, dd in zip(q0, delta)] for t in (t0, t1)
        )
        value = _take(value, seg_id) + t0 * _take(seg["val1"] - seg["val0"], seg_id)
        radius, batch = _take(radius, seg_id), _take(batch, seg_id)
    batch = batch.long()
    max_per_row = None
    if device.type == "cpu":
        used = batch[radius >= 0]
        max_per_row = int(torch.bincount(used).max()) if used.numel() else 0

    # Rows of each capsule's bounding box over the leading (all but last) axes; radius < 0 gives none.
    lo, extent = [], []
    for k in range(dims - 1):
        lo_k = torch.ceil(torch.minimum(q0[k], q1[k]) - radius).clamp(min=0)
        hi_k = torch.floor(torch.maximum(q0[k], q1[k]) + radius).clamp(max=spatial[k] - 1)
        lo.append(lo_k)
        extent.append(torch.where(radius >= 0, hi_k - lo_k + 1, 0.0).clamp(min=0).long())
    n_rows = extent[0] if dims == 2 else extent[0] * extent[1]
    n_spans = int(n_rows.sum())
    cap_id = torch.repeat_interleave(n_rows, output_size=n_spans)
    first = torch.cumsum(n_rows, 0) - n_rows
    # Index of each span within its capsule: a small integer, exact in float32 whatever the number of spans.
    local = torch.arange(n_spans, device=device) - _take(first, cap_id)
    if dims == 2:
        row = local + _take(batch * spatial[0] + lo[0].long(), cap_id)
        offsets = [local.float()]
        bases = [lo[0] - q0[0]]
    else:
        e1 = _take(extent[1], cap_id)
        yz = [local // e1, local % e1]
        start = (batch * spatial[0] + lo[0].long()) * spatial[1] + lo[1].long()
        row = _take(start, cap_id) + yz[0] * spatial[1] + yz[1]
        offsets = [c.float() for c in yz]
        bases = [lo[0] - q0[0], lo[1] - q0[1]]
    if not with_values:
        value = None  # the raw union needs no order values
    x_lo, x_hi, value = _capsule_row_interval(q0, q1, radius, offsets, bases, value, cap_id)
    width = spatial[-1]
    x0 = x_lo.clamp_(0, width).ceil_()
    x1 = torch.maximum(x_hi.clamp_(-1, width - 1).floor_(), x0 - 1)
    return {"row": row, "x0": x0.long(), "x1": x1.long(), "value": value, "max_per_row": max_per_row}


def _capsule_row_interval(
    q0: list[torch.Tensor],
    q1: list[torch.Tensor],
    r: torch.Tensor,
    offsets: list[torch.Tensor],
    bases: list[torch.Tensor],
    value: torch.Tensor | None,
    cap_id: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """
    Interval of x where the point (y, x) lies within ``r`` of segment q0-q1 (``q0``, ``q1``: lists of D
    coordinate columns and ``r`` per capsule); the row of each span has leading coordinates
    ``q0[:-1] + offsets + bases[cap_id]`` (``offsets`` per span, ``bases`` per capsule). The capsule is
    convex, so the union of its cylinder and its two end balls on one row is one interval. Returns ``lo``,
    ``hi`` per span (empty: ``lo > hi``) and ``value[cap_id]`` (``None`` when ``value`` is ``None``).

    Per capsule the cylinder |p - q0|^2 - ((p - q0)·d)^2 / |d|^2 <= r^2 is solved for x once: on a row with
    leading offset e from q0 and m = e·d_lead it is the interval ``m k1 +- half`` around q0's x (``half``
    is constant in 2D), cut to the slab 0 <= (p - q0)·d <= |d|^2 that projects onto the segment, i.e.
    ``-m / dx + [min, max](0, |d|^2 / dx)``. Every per-capsule column is gathered per span by one
    ``index_select``; an empty piece is pushed out by a penalty (``_far``) instead of a boolean mask.
    """
    dims = len(q0)
    d = [b - a for a, b in zip(q0, q1)]
    dx = d[-1]
    lead2 = d[0] * d[0] if dims == 2 else torch.addcmul(d[0] * d[0], d[1], d[1])
    l2 = torch.addcmul(lead2, dx, dx)
    l2_safe = l2.clamp(min=1e-6)
    # a = 1 - dx^2 / |d|^2 (no cancellation); clamped for segments along x, whose bounding rows the
    # segment's own rows already bound.
    a = (lead2 / l2_safe).clamp_(min=1e-10)
    k1 = dx / (l2_safe * a)
    # 1 / dx with |dx| >= 1e-4: a segment across the rows keeps its slab (to 1e-4 of a pixel).
    inv_dx = 1 / torch.where(dx.abs() < 1e-4, torch.where(dx < 0, -1e-4, 1e-4), dx)
    slab = l2 * inv_dx
    is_segment = l2 > 1e-6  # a disc has no cylinder: its slab is made empty
    x0, x1, r2 = q0[-1], q1[-1], r * r
    slab_lo = torch.where(is_segment, x0 + slab.clamp(max=0), _FAR)
    slab_hi = torch.where(is_segment, x0 + slab.clamp(min=0), -_FAR)
    n_lead = dims - 1
    cols = [x0, x1, r2, slab_lo, slab_hi, *bases, *d[:-1]]
    if dims == 2:
        half = torch.sqrt(r2 / a)
        # slab offset -m / dx = e * (-d0 / dx); cylinder centre m k1 = e * (d0 k1)
        cols += [-d[0] * inv_dx, k1 * d[0], x0 - half, x0 + half]
    else:
        cols += [-inv_dx, k1, 1 / (l2_safe * a * a), 1 / a, r2 / a]
    if value is not None:
        cols.append(value)
    g = list(torch.stack(cols).index_select(1, cap_id).unbind(0))
    gx0, gx1, gr2, g_slab_lo, g_slab_hi = g[:5]
    e = [o + b for o, b in zip(offsets, g[5 : 5 + n_lead])]
    g_d = g[5 + n_lead : 5 + 2 * n_lead]
    rest = g[5 + 2 * n_lead :]
    if dims == 2:
        slab_slope, slope, band_lo, band_hi = rest[:4]
        lo = torch.maximum(torch.addcmul(band_lo, e[0], slope), torch.addcmul(g_slab_lo, e[0], slab_slope))
        hi = torch.minimum(torch.addcmul(band_hi, e[0], slope), torch.addcmul(g_slab_hi, e[0], slab_slope))
        ball0 = torch.addcmul(gr2, e[0], e[0], value=-1)
        e_end = e[0] - g_d[0]
        ball1 = torch.addcmul(gr2, e_end, e_end, value=-1)
    else:
        g_ninv, gk1, gk2, gk3, gk4 = rest[:5]
        m = torch.addcmul(e[0] * g_d[0], e[1], g_d[1])
        h0 = torch.addcmul(e[0] * e[0], e[1], e[1])
        half2 = m * m * gk2 - h0 * gk3 + gk4
        half = _half_width(half2)
        centre = torch.addcmul(gx0, m, gk1)
        t = m * g_ninv
        lo = torch.maximum(centre - half, t + g_slab_lo)
        hi = torch.minimum(centre + half, t + g_slab_hi)
        ball0 = gr2 - h0
        ball1 = gr2 - (e[0] - g_d[0]) ** 2 - (e[1] - g_d[1]) ** 2
    empty = _far(hi - lo)
    lo, hi = lo + empty, hi - empty
    # End balls: (x - x_end)^2 <= r^2 - |e_end|^2 =: ball; a negative ball turns the half width negative.
    for ball, x_end in ((ball0, gx0), (ball1, gx1)):
        half = _half_width(ball)
        lo = torch.minimum(lo, x_end - half)
        hi = torch.maximum(hi, x_end + half)
    return lo, hi, (g[-1] if value is not None else None)


def render_span_union(spans: dict, batch_size: int, spatial: tuple[int, ...]) -> torch.Tensor:
    """
    Rasterise the union of row spans: +1 / -1 at the span ends of a difference array, cumulative sum along rows.

    Args:
        spans: output of :func:`capsule_row_spans`.
        batch_size: number of masks B.
        spatial: (H, W) or (H, W, D) of the masks.

    Returns:
        float32 ``(B, *spatial)``, 1 where a span covers the pixel.
    """
    n_rows = batch_size * math.prod(spatial[:-1])
    width = spatial[-1]
    row, x0, x1 = spans["row"], spans["x0"], spans["x1"]
    # One spare column per row takes the -1 of spans ending on the last pixel (x0 <= width and
    # x1 + 1 <= width always; an empty span puts +1 and -1 on the same cell).
    stride = width + 1
    base = row * stride
    index = torch.cat([base + x0, base + x1 + 1])
    # The running sum is the number of spans covering a pixel, at most the spans of its row: below 256,
    # uint8 is exact (the negative differences wrap modulo 256 and cancel) and its scatter, cumulative
    # sum and conversion are about twice as fast as float32's on CPU. Other devices keep float32 (no
    # reliance on uint8 atomics).
    small = spans["max_per_row"] is not None and spans["max_per_row"] < 256
    dtype = torch.uint8 if small else torch.float32
    step = torch.ones(2, row.numel(), dtype=dtype, device=row.device)
    step[1] = 255 if small else -1
    diff = torch.zeros(n_rows * stride, dtype=dtype, device=row.device)
    diff.scatter_add_(0, index, step.view(-1))
    covered = diff.view(n_rows, stride).cumsum_(dim=1)[:, :width]
    out = torch.empty(batch_size, *spatial, dtype=torch.float32, device=row.device)
    out.view(n_rows, width).copy_(covered.clamp_(max=1))
    return out
