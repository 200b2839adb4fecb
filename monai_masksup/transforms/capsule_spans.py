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

__all__ = ["capsule_row_spans", "render_span_union", "row_interval_min", "span_union_indicator"]

# Offset that pushes an empty piece of a row interval beyond any image (lo + _FAR > hi - _FAR).
_FAR = 1e9
# Capsules that miss the image's first or last column by less than this many pixels are not culled.
_CULL_MARGIN = 1e-3
# Integers below this are exact in float32: span, row and pixel indices of 2D batches are formed in float32
# when they stay below it.
_FLOAT_INDEX_LIMIT = 2**24


def _take(column: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``column.flatten()[index]`` by ``index_select``, which is several times cheaper than advanced indexing."""
    return column.reshape(-1).index_select(0, index)


def _expand_groups(sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For groups of ``sizes`` (int64) items laid out one after the other: the group of every item and its
    index within the group."""
    group = torch.repeat_interleave(sizes, output_size=int(sizes.sum()))
    return group, _index_in_group(sizes, group)


def _index_in_group(sizes: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """Index of every item within its group, for groups of ``sizes`` items and the ``group`` of every item."""
    first = torch.cumsum(sizes, 0) - sizes
    return torch.arange(group.numel(), device=sizes.device) - _take(first, group)


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

    Args:
        row: (S,) int64 row of every interval, in ``[0, n_rows)``.
        x0: (S,) int64 first pixel, in ``[0, width]``.
        x1: (S,) int64 last pixel (inclusive), in ``[-1, width - 1]``; ``x1 < x0`` is an empty interval.
        key: (S,) integer keys (int16 or int32; the result has this dtype).
        n_rows: number of rows.
        width: pixels per row.
        fill: key of a pixel that no interval covers.

    Returns:
        ``(n_rows, width)`` per-pixel minimum key.
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


@torch.no_grad()
def capsule_row_spans(
    seg: dict[str, torch.Tensor],
    spatial: tuple[int, ...],
    chunk_length: float | None = None,
    with_values: bool = True,
    union_cells: bool = False,
    batch_size: int | None = None,
) -> dict[str, torch.Tensor | int | None]:
    """
    Intersect every capsule (all points within ``radius`` of the segment ``p0``-``p1``) with the image rows
    (lines along the last axis) of its bounding box: one pixel interval per capsule and row, computed exactly.
    Runs without autograd (inputs may require grad; the outputs do not: they are pixel ranges).

    Args:
        seg: capsules as columns: ``p0``, ``p1`` (N, D) in pixel coordinates (channel-free, D = 2 or 3),
            ``radius`` (N,) (negative = unused), ``batch`` (N,) sample index, and for ``with_values`` ``val0``,
            ``val1`` (N,): order values at both ends (interpolated along split capsules).
        spatial: (H, W) or (H, W, D) of the masks.
        chunk_length: split capsules longer than this into exact sub-capsules (``None``: no splitting).
        with_values: also return the order value of every span (``value`` is ``None`` otherwise).
        union_cells: return the spans as the cells of the union's difference array (``cells``) instead of
            ``row``, ``x0``, ``x1``: all :func:`span_union_indicator` needs, in fewer passes.
        batch_size: number of masks (more than the largest ``batch`` index); taken from ``batch`` when ``None``,
            which costs a host sync on GPU.

    Raises:
        ValueError: when ``with_values`` is set and ``seg`` has no ``val0``.

    Returns:
        per span: ``row`` (flat index of (batch, leading coordinates)), ``x0``, ``x1`` (inclusive pixel range on
        the last axis; empty when ``x1 < x0``), or with ``union_cells`` instead ``cells`` (2, S): the flat
        pixel indices ``row * W + x0`` and ``row * W + x1 + 1``; ``value`` (order value at the start of the
        (sub-)capsule); and ``max_per_row``, an upper bound of the spans in one row (the most capsules of one
        sample; computed on CPU only, where it picks the uint8 union, and ``None`` elsewhere to spare a device
        sync).
    """
    dims = len(spatial)
    # Per-capsule columns stay strided views: they are short, and every per-span column is gathered anew.
    q0, q1 = seg["p0"].unbind(1), seg["p1"].unbind(1)
    radius, batch = seg["radius"], seg["batch"]
    value = seg.get("val0") if with_values else None
    if with_values and value is None:
        raise ValueError("capsule_row_spans: with_values=True needs the order values `val0` and `val1`.")
    device = radius.device
    if chunk_length is not None:
        # Splitting into sub-capsules is exact: their union is the capsule.
        delta = [b - a for a, b in zip(q0, q1)]
        length = torch.sqrt(sum(c * c for c in delta))
        n_chunk = torch.ceil(length / chunk_length).clamp(min=1).long()
        seg_id, piece = _expand_groups(n_chunk)
        m = _take(n_chunk.float(), seg_id)
        t0 = piece.float() / m
        t1 = t0 + 1 / m
        q0, q1 = (
            [_take(a, seg_id) + t * _take(dd, seg_id) for a, dd in zip(q0, delta)] for t in (t0, t1)
        )
        if value is not None:
            value = _take(value, seg_id) + t0 * _take(seg["val1"] - seg["val0"], seg_id)
        radius, batch = _take(radius, seg_id), _take(batch, seg_id)
    batch = batch.long()
    max_per_row = None
    # A capsule wholly left or right of the image gives only empty spans: it gets no rows (a quarter of the
    # capsules of PConv-style masks, mostly chords of large arcs whose centre lies inside the image). One that
    # misses the border pixels by less than _CULL_MARGIN is kept, so that the interval formula's own rounding
    # decides about them, as it does everywhere else.
    width = spatial[-1]
    x_min, x_max = torch.minimum(q0[-1], q1[-1]), torch.maximum(q0[-1], q1[-1])
    used = (radius >= 0) & (x_max + radius >= -_CULL_MARGIN) & (x_min - radius <= width - 1 + _CULL_MARGIN)
    if device.type == "cpu":
        # capsules in use per sample (a weighted count, cheaper than selecting them)
        max_per_row = int(torch.bincount(batch, weights=used.to(torch.float32)).max()) if batch.numel() else 0

    # Rows of each capsule's bounding box over the leading (all but last) axes; radius < 0 gives none.
    lo, extent = [], []
    for k in range(dims - 1):
        lo_k = torch.ceil(torch.minimum(q0[k], q1[k]) - radius).clamp(min=0)
        hi_k = torch.floor(torch.maximum(q0[k], q1[k]) + radius).clamp(max=spatial[k] - 1)
        lo.append(lo_k)
        extent.append(torch.where(used, hi_k - lo_k + 1, 0.0).clamp(min=0).long())
    n_rows = extent[0] if dims == 2 else extent[0] * extent[1]
    cols = _interval_columns(q0, q1, radius)
    n_cols = len(cols)
    total = int(n_rows.sum())
    cap_id = torch.repeat_interleave(n_rows, output_size=total)
    # 2D images of up to 2^24 pixels (all masks of the batch together) count spans, rows and pixels exactly in
    # float32: the span's index within its capsule and its row come out of the one gather of per-capsule
    # columns, and the union's cells are formed before the single integer conversion.
    fast = dims == 2 and 0 < total < _FLOAT_INDEX_LIMIT
    if fast:  # the largest batch index is only needed here (and is a host sync on GPU)
        n_batch = int(batch.max()) + 1 if batch_size is None else int(batch_size)
        fast = n_batch * spatial[0] * (width + 1) < _FLOAT_INDEX_LIMIT
    if fast:
        first = torch.cumsum(n_rows, 0).sub_(n_rows)
        row_start = batch * spatial[0] + lo[0].long()
        cols += [lo[0] - q0[0], first.to(torch.float32), row_start.to(torch.float32)]
    else:
        local = _index_in_group(n_rows, cap_id)
        if dims == 2:
            row = local + _take(batch * spatial[0] + lo[0].long(), cap_id)
            offsets = [local.float()]
            cols += [lo[0] - q0[0]]
        else:
            e1 = _take(extent[1], cap_id)
            yz = [local // e1, local % e1]
            start = (batch * spatial[0] + lo[0].long()) * spatial[1] + lo[1].long()
            row = _take(start, cap_id) + yz[0] * spatial[1] + yz[1]
            offsets = [c.float() for c in yz]
            cols += [lo[0] - q0[0], lo[1] - q0[1]]
    if value is not None:
        cols.append(value)
    # every per-capsule column gathered per span by one index_select
    g = list(torch.stack(cols).index_select(1, cap_id).unbind(0))
    if value is not None:
        value = g.pop()
    if fast:
        base, first_g, row_g = g[n_cols:]
        local = torch.arange(total, device=device, dtype=torch.float32).sub_(first_g)
        e = [local + base]
        row_f = row_g.add_(local)
    else:
        e = [o + b for o, b in zip(offsets, g[n_cols:])]
    lohi = _interval_ends(g[:n_cols], e)
    # x0 = ceil(lo), x1 = floor(hi) clamped to the row, and x1 >= x0 - 1 so that an empty span puts its +1 and
    # -1 on the same cell of the union's difference array; both ends converted in one pass
    lo_x, hi_x = lohi.unbind(0)
    lo_x.clamp_(0, width).ceil_()
    hi_x.clamp_(-1, width - 1).floor_()
    out: dict[str, torch.Tensor | int | None] = {"value": value, "max_per_row": max_per_row}
    if fast and union_cells:
        # cells x0 and x1 + 1 = max(floor(hi) + 1, x0), offset by row * W, exact in float32 here
        torch.maximum(hi_x.add_(1), lo_x, out=hi_x)
        out["cells"] = lohi.add_(row_f, alpha=width).long()
        return out
    torch.maximum(hi_x, lo_x - 1, out=hi_x)
    x01 = lohi.long()
    if fast:
        row = row_f.long()
    if union_cells:
        out["cells"] = _union_cells(row, x01[0], x01[1], width)
    else:
        out.update(row=row, x0=x01[0], x1=x01[1])
    return out


def _union_cells(row: torch.Tensor, x0: torch.Tensor, x1: torch.Tensor, width: int) -> torch.Tensor:
    """(2, S) flat difference-array cells ``row * width + x0`` and ``row * width + x1 + 1`` of the spans."""
    return torch.stack([x0, x1 + 1]).add_(row, alpha=width)


def _pair_signs(like: torch.Tensor) -> torch.Tensor:
    """``[[-1], [1]]``, to move the lower of a (2, S) pair of interval ends down and the upper one up (made on
    the device, without a copy from the host)."""
    return torch.arange(-1, 2, 2, dtype=like.dtype, device=like.device).view(2, 1)


def _interval_columns(q0: list[torch.Tensor], q1: list[torch.Tensor], r: torch.Tensor) -> list[torch.Tensor]:
    """
    Per-capsule columns of the row-interval formula of :func:`_interval_ends` (``q0``, ``q1``: lists of D
    coordinate columns of the segment ends, ``r`` the radius per capsule): 2D ``x0, dx, s lead, s / lead, r^2,
    c`` (s: the sign of d_y), 3D ``x0, dx, lead, 1 / lead, r^2, unit_y, unit_z, slope, unbounded, toward_end,
    d_y, d_z``.
    """
    dims = len(q0)
    d = [b - a for a, b in zip(q0, q1)]
    dx = d[-1]
    lead = d[0].abs() if dims == 2 else torch.sqrt(torch.addcmul(d[0] * d[0], d[1], d[1]))
    # |d_lead| >= 1e-6: a segment along the rows (or a ball) is moved by at most 1e-6 px.
    lead_s = lead.clamp(min=1e-6)
    inv_lead = 1 / lead_s
    length = torch.sqrt(torch.addcmul(lead * lead, dx, dx)).clamp_(min=1e-6)
    # stationary point offset u* = r dx / |d|, in units of t: c = r dx / (|d| |d_lead|)
    slope_c = dx / (length * lead_s)
    r2 = r * r
    x0 = q0[-1]
    # A segment along the rows (|d_lead| < 1e-6, or a ball) is taken as exactly parallel to them: u = e for
    # every t, the t range is unbounded and the stationary points are at t = -+inf (by the sign of dx), so
    # a row exactly r away keeps the whole segment rather than one end.
    parallel = lead < 1e-6
    unbounded = torch.where(parallel, 1e12, 0.0)
    lead = torch.where(parallel, 0.0, lead)
    toward_end = unbounded * torch.sign(dx)
    if dims == 2:
        # The leading direction is the sign s of d_y, e_par = s e and r_row = r. The formula needs e_par only
        # as p = e_par / |d_y| and through u^2 = (e_par - t |d_y|)^2 = (e - t s |d_y|)^2, so the signed lead
        # s |d_y| and s / |d_y| stand in for |d_y| and 1 / |d_y| (bit for bit: s is +-1).
        sign = torch.where(d[0] < 0, -1.0, 1.0)
        # |c| <= q holds exactly, not only up to rounding (a segment almost along the rows has a huge q, whose
        # last bit would otherwise move the end of a tangent row by pixels), so that t can be clamped to
        # [0, 1] alone in _interval_ends
        q = torch.addcmul(unbounded, r, inv_lead)
        c = torch.addcmul(toward_end, r, slope_c).clamp_(-q, q)
        return [x0, dx, lead * sign, inv_lead * sign, r2, c]
    # unit leading direction (0 for a segment parallel to the rows: then e_par = 0 and rho = |e|)
    unit = [torch.where(parallel, 0.0, c * inv_lead) for c in d[:-1]]
    return [x0, dx, lead, inv_lead, r2, *unit, slope_c, unbounded, toward_end, *d[:-1]]


def _interval_ends(g: list[torch.Tensor], e: list[torch.Tensor]) -> torch.Tensor:
    """
    Interval of x where the point (y, x) of a row lies within ``r`` of its capsule's segment q0-q1: ``g`` are the
    columns of :func:`_interval_columns` gathered per span, ``e`` the offsets of the span's row from q0 along
    the leading axes (D - 1 columns per span). Returns ``(2, S)`` rows ``lo``, ``hi`` per span (empty:
    ``lo > hi``).

    With P(t) = q0 + t (q1 - q0), t in [0, 1], the row meets the ball of radius r around P(t) in
    ``x(t) +- w(t)``, w(t) = sqrt(r_row^2 - u(t)^2), where u(t) = e - t |d_lead| is the offset of the row from
    P(t) along the segment's leading direction and r_row^2 = r^2 - rho^2 removes the row's distance rho across
    it (rho = 0 in 2D). x(t) - w(t) is convex and x(t) + w(t) concave in t, so ``lo`` and ``hi`` are taken at
    their stationary points, u = +-r_row dx / |d|, clamped to the t where the ball meets the row
    (|u| <= r_row) and to [0, 1]: a handful of elementwise passes per span, with no case split between the
    cylinder and the end balls.
    """
    dims = len(e) + 1
    gx0, gdx, glead, ginv, gr2 = g[:5]
    rest = g[5:]
    if dims == 2:
        (c,) = rest
        e_par = e[0]  # with the signed lead and inverse lead, see _interval_columns
        row_r2 = gr2
        empty = q = None
    else:
        ux, uy, gslope, gunbounded, gtoward, gd0, gd1 = rest
        e_par = torch.addcmul(e[0] * ux, e[1], uy)
        # r_row^2 = r^2 - rho^2 = r^2 - |e|^2 + e_par^2
        row_r2 = torch.addcmul(torch.addcmul(gr2, e[0], e[0], value=-1).addcmul_(e[1], e[1], value=-1), e_par, e_par)
        empty = _far(row_r2)
        row_r = row_r2.clamp(min=1e-12).sqrt_()
        q = torch.addcmul(gunbounded, row_r, ginv)
        c = torch.addcmul(gtoward, row_r, gslope)
    p = e_par * ginv
    signs = _pair_signs(p)
    # (2, S): the t of the lower and of the upper end of the interval, and below the ends themselves
    # (in place where a buffer is free: fewer fresh pages to fault in). The stationary points p -+ c lie in
    # the t range [p - q, p + q] where the ball meets the row (|c| <= q: |dx| <= |d|), so clamping them to
    # that range and to [0, 1] is clamping them to [0, 1] alone whenever the range meets [0, 1], which it does
    # for every row of the bounding box in 2D.
    t = torch.addcmul(p, signs, c)
    if q is None:
        t.clamp_(0, 1)
    else:
        t_min = (p - q).clamp_(min=0)
        t_max = (p + q).clamp_(max=1)
        # In 3D a row of the bounding box can miss the capsule (t range empty).
        empty = empty + _far(t_max - t_min + 1e-6)  # a row exactly r from an end rounds either way
        t.clamp_(t_min, t_max)
    w = torch.addcmul(e_par, t, glead, value=-1)  # u, the offset along the leading direction
    # w = sqrt(r_row^2 - u^2) away from 0, whose sqrt is several times slower on CPU; a tangent row keeps its
    # single pixel
    torch.addcmul(row_r2, w, w, value=-1, out=w).clamp_(min=1e-12).sqrt_()
    lohi = torch.addcmul(gx0, t, gdx, out=t).addcmul_(signs, w)
    if empty is not None:
        lohi.addcmul_(signs, empty, value=-1)
        lo, hi = lohi.unbind(0)
        # In 3D e_par and r_row are irrational even for integer geometry, so a pixel exactly r from an end can
        # round out; the end balls, from |e - t d_lead|^2 directly, keep it (they lie inside the interval, so
        # taking them in never widens it).
        for ball, end_x in (
            (gr2 - e[0] ** 2 - e[1] ** 2, gx0),
            (gr2 - (e[0] - gd0) ** 2 - (e[1] - gd1) ** 2, gx0 + gdx),
        ):
            half = _half_width(ball)
            torch.minimum(lo, end_x - half, out=lo)
            torch.maximum(hi, end_x + half, out=hi)
    return lohi


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
    return span_union_indicator(spans, batch_size, spatial).to(torch.float32)


def span_union_indicator(spans: dict, batch_size: int, spatial: tuple[int, ...]) -> torch.Tensor:
    """
    :func:`render_span_union` before the conversion to float32: ``(B, *spatial)`` 0 / 1 values of uint8 (CPU,
    when fewer than 256 spans can meet in a row) or float32.
    """
    n_pix = batch_size * math.prod(spatial)
    width = spatial[-1]
    # Row-major difference array over all masks with one spare cell at the end: a span ending on the last
    # pixel of a row puts its -1 on the next row's first cell, which is right for one running sum over the
    # whole array because every row's differences sum to 0 (an empty span puts +1 and -1 on the same cell).
    cells = spans.get("cells")
    if cells is None:
        cells = _union_cells(spans["row"], spans["x0"], spans["x1"], width)
    index = cells.view(-1)
    # The running sum is the number of spans covering a pixel, at most the spans of its row: below 256,
    # uint8 is exact (the negative differences wrap modulo 256 and cancel) and its scatter, cumulative
    # sum and conversion are about twice as fast as float32's on CPU. Other devices keep float32 (no
    # reliance on uint8 atomics), whose running sums are small integers and so exact.
    small = spans["max_per_row"] is not None and spans["max_per_row"] < 256
    dtype = torch.uint8 if small else torch.float32
    step = torch.ones(cells.shape, dtype=dtype, device=cells.device)
    step[1] = 255 if small else -1
    diff = torch.zeros(n_pix + 1, dtype=dtype, device=cells.device)
    diff.scatter_add_(0, index, step.view(-1))
    return diff.cumsum_(dim=0)[:n_pix].clamp_(max=1).view(batch_size, *spatial)
