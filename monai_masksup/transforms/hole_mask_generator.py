"""Batched, vectorised generator of irregular hole masks (lines, discs, elliptic arcs, brush strokes)."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .capsule_spans import capsule_row_spans, row_interval_min, span_union_indicator
from .spatial_size import as_spatial_size

__all__ = ["COVERAGE_PRESETS", "HoleMaskGenerator"]

#: Right-closed coverage bins ``(lo, hi]`` of the hole ratio; "high" is the MaskSup default.
COVERAGE_PRESETS: dict[str, tuple[float, float]] = {"low": (0.01, 0.1), "high": (0.5, 0.6)}

# Sub-bins per order level when the coverage threshold is placed inside one primitive or ring.
_SUB_BINS = 64
# Order key of a pixel that no primitive covers.
_UNCOVERED = 2**30
# OpenCV draws a line of thickness t about t + 1 pixels wide (t = 3 covers 5 rows when horizontal); the
# capsule radius t / 2 + 0.6 matches the PConv-Keras hole ratios.
_WIDTH_PAD = 0.6
# Vertices of a free-form brush stroke at most (it uses 4 to this many).
_STROKE_VERTICES = 12
# Cached layouts per generator (least recently used dropped first): batch and image sizes in use at a time.
_MAX_LAYOUTS = 32


def _check_count_range(name: str, value: Sequence[int]) -> tuple[int, int]:
    if len(value) != 2 or int(value[0]) < 0 or int(value[1]) < int(value[0]):
        raise ValueError(f"{name} must be a (min, max) pair with 0 <= min <= max, got {value!r}.")
    return int(value[0]), int(value[1])


def _check_coverage(coverage: str | Sequence[float] | None) -> tuple[float, float] | None:
    if coverage is None:
        return None
    if isinstance(coverage, str):
        if coverage not in COVERAGE_PRESETS:
            raise ValueError(
                f"coverage must be one of {sorted(COVERAGE_PRESETS)}, a (lo, hi) pair or None, got {coverage!r}."
            )
        return COVERAGE_PRESETS[coverage]
    try:
        lo, hi = (float(c) for c in coverage)
    except (TypeError, ValueError) as e:
        raise ValueError(f"coverage must be 'low', 'high', a (lo, hi) pair or None, got {coverage!r}.") from e
    # lo = 0 is allowed: the bin is right-closed, so (0, hi] never asks for an empty mask
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"coverage (lo, hi) must satisfy 0 <= lo < hi <= 1 (the bin is (lo, hi]), got {coverage!r}.")
    return lo, hi


def _dilate(mask: torch.Tensor, cross: bool) -> torch.Tensor:
    """One binary dilation step of a ``(B, 1, *spatial)`` bool mask by a 3^D cube or the 2D-neighbour cross."""
    out = mask.clone()
    for dim in range(2, mask.ndim):
        n = mask.shape[dim]
        src = mask if cross else out.clone()
        out.narrow(dim, 1, n - 1).logical_or_(src.narrow(dim, 0, n - 1))
        out.narrow(dim, 0, n - 1).logical_or_(src.narrow(dim, 1, n - 1))
    return out


class HoleMaskGenerator:
    """
    Random irregular hole masks made of thick lines, filled discs (balls in 3D), thick elliptic arcs and
    free-form brush strokes, generated for a whole batch at once on any device.

    The primitives follow the irregular masks of Liu et al., "Image Inpainting for Irregular Holes Using
    Partial Convolutions", ECCV 2018 (https://arxiv.org/abs/1804.07723), as sampled by the PConv-Keras
    ``MaskGenerator``: per mask 1-20 lines, 1-20 discs and 1-20 elliptic arcs, thickness / radius drawn from
    ``{3, ..., int(0.03 * (H + W))}``; the free-form strokes are random-walk polylines in the manner of
    DeepFill v2. The same code draws 3D masks (lines, balls, arcs on random planes, strokes in 3D).

    Every primitive is split into capsules (all points within a radius of a segment; a disc is a capsule of
    length 0; an arc is a polyline of chords) and each capsule is rasterised exactly, as one pixel interval
    per image row along the last axis, so the work grows with the stroke length and thickness, never with
    (pixels x primitives), and there is no Python loop over samples or primitives
    (:mod:`monai_masksup.transforms.capsule_spans`). Raw masks are the union of the intervals (a difference
    array and one cumulative sum); lines and arcs get the capsule radius
    ``t / 2 + 0.6`` because OpenCV draws a line of thickness t about t + 1 pixels wide.

    Coverage control: with ``coverage=(lo, hi)`` every mask gets a target hole ratio drawn uniformly in
    ``(lo, hi]``. A pool of primitives sized for the bin (2D: about 1.25 x what the top of the bin needs,
    plus 10) is put in a random order and every pixel records the order of the first primitive, and the
    position along it, that covers it; for a mask whose union stays below its target the union is grown by
    alternating 3^D cube / cross dilation rings with a smooth random tie-break (rare in 2D, usual in 3D). The
    mask is this order field thresholded per sample at the candidate hole ratio closest to the target inside
    the bin, so the primitives drawn last are dropped or cut short (at 1/64 of a primitive or ring, and at
    capsules of ``chunk_length``): in tests every one of 1,000 masks at 224 x 224 fell inside the bin for
    "low", "high" and (0.2, 0.3). This replaces the dilation/erosion ladder: it hits any bin, the extreme
    ones included, without moving a stroke's shape. The ratio moves in steps of one disc, one arc chord or one
    1/64 cut of a capsule, so an image too small for such steps to fit in the bin (tens of pixels, or 1 x N)
    can have no threshold inside it: the mask then takes the reachable ratio closest to the target, which
    may lie outside the bin (even 0).

    ``coverage=None`` returns the raw union of the randomly counted primitives. At 224 x 224 (4,000 masks)
    its hole ratio has mean 0.307, std 0.102, quartiles 0.232 / 0.314 / 0.387 against the PConv-Keras
    reference (OpenCV) 0.312, 0.104 and 0.233 / 0.321 / 0.391: the mean is within 0.01.

    Randomness: every random number is drawn from ``generator`` on the generator's own device (the default
    CPU generator when ``None``) and then moved to ``device``, so a seeded CPU generator gives the same masks
    on CPU and CUDA (a CPU generator cannot drive CUDA sampling directly). A CUDA generator may be passed
    when ``device`` is CUDA.

    Args:
        coverage: "low" = (0.01, 0.1], "high" = (0.5, 0.6] (MaskSup default), a ``(lo, hi)`` pair with
            ``0 <= lo < hi <= 1``, or ``None`` for the raw generator output without coverage control.
        n_lines: (min, max) number of thick lines per mask (counts are drawn when ``coverage`` is ``None``;
            under coverage control the maxima set the mix of the pool, whose size follows the bin).
        n_circles: (min, max) number of filled discs / balls.
        n_arcs: (min, max) number of thick elliptic arcs.
        n_strokes: (min, max) number of free-form brush strokes (4-12 vertices each). The default ``(0, 0)``
            keeps the PConv-Keras recipe; ``(1, 5)`` adds DeepFill-like strokes.
        size_scale: largest thickness / radius as a fraction of the mean side times 2 (PConv-Keras: 0.03 of
            ``H + W``), at least 3 pixels.
        chunk_length: length in pixels of the capsules long strokes are split into (the resolution at which the
            last primitive is cut short). Default: 64 in 2D, 8 in 3D.

    Raises:
        ValueError: when ``coverage`` is not "low", "high", None or a pair ``0 <= lo < hi <= 1``, or a count range
            is malformed.
    """

    def __init__(
        self,
        coverage: str | tuple[float, float] | None = "high",
        n_lines: Sequence[int] = (1, 20),
        n_circles: Sequence[int] = (1, 20),
        n_arcs: Sequence[int] = (1, 20),
        n_strokes: Sequence[int] = (0, 0),
        size_scale: float = 0.03,
        chunk_length: float | None = None,
    ) -> None:
        self.coverage = _check_coverage(coverage)
        self.n_lines = _check_count_range("n_lines", n_lines)
        self.n_circles = _check_count_range("n_circles", n_circles)
        self.n_arcs = _check_count_range("n_arcs", n_arcs)
        self.n_strokes = _check_count_range("n_strokes", n_strokes)
        if self.n_lines[1] + self.n_circles[1] + self.n_arcs[1] + self.n_strokes[1] == 0:
            raise ValueError("at least one of n_lines, n_circles, n_arcs, n_strokes must allow a primitive.")
        if size_scale <= 0:
            raise ValueError(f"size_scale must be positive, got {size_scale}.")
        self.size_scale = float(size_scale)
        if chunk_length is not None and chunk_length <= 0:
            raise ValueError(f"chunk_length must be positive, got {chunk_length}.")
        self.chunk_length = chunk_length
        self._layouts: OrderedDict[tuple, dict[str, torch.Tensor]] = OrderedDict()

    def __getstate__(self) -> dict:
        # the layout cache is rebuilt on first use; it is not worth pickling into every DataLoader worker
        return {**self.__dict__, "_layouts": OrderedDict()}

    def __setstate__(self, state: dict) -> None:
        # generators pickled before the cache existed have no `_layouts`
        self.__dict__.update(state)
        self.__dict__.setdefault("_layouts", OrderedDict())

    # ------------------------------------------------------------------ public API
    def __call__(self, *args, **kwargs) -> torch.Tensor:
        return self.gen(*args, **kwargs)

    def gen(
        self,
        batch_size: int,
        spatial_size: Sequence[int],
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """
        Draw a batch of hole masks.

        Args:
            batch_size: number of masks B.
            spatial_size: (H, W) or (H, W, D), every side at least 1.
            device: device of the returned masks (default CPU).
            generator: source of all randomness; parameters are drawn on its device and moved to ``device``.

        Returns:
            float32 tensor ``(B, 1, *spatial_size)`` on ``device``, 1 = hole, 0 = keep.

        Raises:
            ValueError: when ``spatial_size`` is not 2D or 3D with positive sides, or ``batch_size < 1``.
        """
        spatial = as_spatial_size(spatial_size)
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        batch_size = int(batch_size)
        device = torch.device("cpu") if device is None else torch.device(device)

        # Inference mode spares every one of the few hundred small tensor operations its autograd bookkeeping
        # (about 12 % of a batch of 16 at 224 x 224 on CPU); the 0 / 1 indicator is converted to float32 outside
        # it, so the mask returned is an ordinary tensor.
        with torch.inference_mode():
            indicator = self._indicator(batch_size, spatial, device, generator)
        return indicator.to(torch.float32, copy=True).unsqueeze(1)

    def _indicator(
        self, batch_size: int, spatial: tuple[int, ...], device: torch.device, generator: torch.Generator | None
    ) -> torch.Tensor:
        """The masks as 0 / 1 values of an integer or float dtype, ``(B, *spatial)``. The intermediate tensors
        are released on return, before the float32 masks are allocated, which can then reuse their memory."""
        gen_device = generator.device if generator is not None else torch.device("cpu")
        draws = self._draw(batch_size, spatial, generator, gen_device)
        if gen_device != device:
            draws = {k: v.to(device) for k, v in draws.items()}
        segments = self._segments(draws, spatial)
        raw = self.coverage is None
        chunk = self._chunk_length(len(spatial))
        spans = capsule_row_spans(segments, spatial, chunk, not raw, union_cells=raw, batch_size=batch_size)
        if raw:
            return span_union_indicator(spans, batch_size, spatial)
        n_total = sum(self._slots(spatial))
        return self._render_controlled(spans, n_total, draws["target"], batch_size, spatial, generator)

    # ------------------------------------------------------------------ random parameters
    def _pool_counts(self, spatial: tuple[int, ...]) -> tuple[int, int, int, int]:
        """Primitives per type drawn under coverage control (all of them compete in the order field)."""
        n_max = (self.n_lines[1], self.n_circles[1], self.n_arcs[1], self.n_strokes[1])
        if len(spatial) != 2:
            return n_max
        # One PConv primitive covers ~1.2 % of a 2D image, so a union of n reaches about 1 - exp(-0.012 n).
        # Draw 1.25x the primitives the top of the bin needs, plus 10: drawing more primitives is much
        # cheaper than the dilation rings that otherwise fill a shortfall, and the low bins need only a few.
        hi = self.coverage[1]  # type: ignore[index]
        needed = 1.25 * -math.log(max(1.0 - hi, 0.05)) / 0.012 + 10
        share = needed / sum(n_max)
        return tuple(max(1, math.ceil(n * share)) if n > 0 else 0 for n in n_max)  # type: ignore[return-value]

    def _slots(self, spatial: tuple[int, ...]) -> tuple[int, int, int, int]:
        """Primitive slots per kind (lines, discs, arcs, strokes) of every mask: the count maxima for raw
        masks (unused slots are masked), the pool under coverage control."""
        if self.coverage is None:
            return self.n_lines[1], self.n_circles[1], self.n_arcs[1], self.n_strokes[1]
        return self._pool_counts(spatial)

    def _draw(self, batch_size: int, spatial: tuple[int, ...], generator, gen_device) -> dict[str, torch.Tensor]:
        """Draw every random number of a batch, in a fixed order, on the generator's device."""
        dims = len(spatial)
        max_size = max(3, int(sum(spatial) / dims * 2 * self.size_scale))
        b = batch_size
        n_l, n_c, n_a, n_s = self._slots(spatial)
        n_all = n_l + n_c + n_a + n_s

        def rand(*shape):
            return torch.rand(*shape, generator=generator, device=gen_device)

        def randn(*shape):
            return torch.randn(*shape, generator=generator, device=gen_device)

        def randint(lo, hi, shape):
            return torch.randint(lo, hi + 1, shape, generator=generator, device=gen_device, dtype=torch.float32)

        if self.coverage is None:
            ranges = (self.n_lines, self.n_circles, self.n_arcs, self.n_strokes)
            counts = torch.stack([randint(lo, hi, (b,)) for lo, hi in ranges], dim=1)
        else:
            counts = torch.tensor([n_l, n_c, n_a, n_s], device=gen_device, dtype=torch.float32).expand(b, 4)
        d: dict[str, torch.Tensor] = {"counts": counts}
        if self.coverage is not None:
            d["order_keys"] = rand(b, n_all)
        # line thickness, disc radius, arc and stroke thickness; line starts and ends, disc and arc centres
        d["size"] = randint(3, max_size, (b, n_all))
        d["points"] = rand(b, 2 * n_l + n_c + n_a, dims)
        d["arc_a"], d["arc_b"] = randint(1, spatial[-1], (b, n_a)), randint(1, spatial[-2], (b, n_a))
        d["arc_dirs"] = randn(b, n_a, 2, dims)
        d["arc_deg"] = randint(3, 180, (b, n_a, 2))
        if n_s > 0:
            d["stroke_start"], d["stroke_turn"] = rand(b, n_s, 1, dims), randn(b, n_s, _STROKE_VERTICES - 1, dims)
            d["stroke_len"] = rand(b, n_s, _STROKE_VERTICES - 1, 1)
            d["stroke_nseg"] = randint(3, _STROKE_VERTICES - 1, (b, n_s, 1))
        if self.coverage is not None:
            lo, hi = self.coverage
            # (lo, hi]: 1 - U[0, 1) lies in (0, 1].
            u = torch.rand(b, generator=generator, device=gen_device, dtype=torch.float64)
            d["target"] = lo + (hi - lo) * (1.0 - u)
        return d

    # ------------------------------------------------------------------ geometry
    def _layout(self, batch_size: int, spatial: tuple[int, ...], device: torch.device) -> dict[str, torch.Tensor]:
        """
        Index and scale columns that depend only on the batch size, the image size, the device and the primitive
        slots (from ``coverage`` and the count ranges, which are part of the key so that changing them after use
        is safe), built once and cached: the per-call work is then a few tensor operations fewer.
        """
        n_l, n_c, n_a, n_s = slots = self._slots(spatial)
        key = (batch_size, spatial, str(device), slots)
        layout = self._layouts.get(key)
        if layout is not None:
            try:
                self._layouts.move_to_end(key)
            except KeyError:  # dropped meanwhile by a call from another thread
                pass
            return layout
        b = batch_size
        n_ld = n_l + n_c

        def column(values, dtype=torch.float32):
            return torch.tensor(values, dtype=dtype, device=device)

        # Points are drawn as [line starts, line ends, disc centres, arc centres] per sample; capsules take
        # (start, end) = (line start, line end) for lines and (centre, centre) for discs, for all samples.
        starts = [*range(n_l), *range(2 * n_l, 2 * n_l + n_c)]
        ends = [*range(n_l, 2 * n_l), *range(2 * n_l, 2 * n_l + n_c)]
        n_points = 2 * n_l + n_c + n_a
        line_disc_ends = column(
            [[i * n_points + j for i in range(b) for j in half] for half in (starts, ends)], torch.long
        )
        layout = {
            "side": column(spatial),
            # kind (lines, discs, arcs, strokes) and index within the kind of every primitive slot
            "slot_kind": column([k for k, n in enumerate(slots) for _ in range(n)], torch.long),
            "slot_index": column([float(i) for n in slots for i in range(n)]),
            # capsule radius = size * scale + pad: OpenCV thickness t gives t / 2 + pad, a disc radius is kept
            "radius_scale": column([0.5] * n_l + [1.0] * n_c + [0.5] * (n_a + n_s)),
            "radius_pad": column([_WIDTH_PAD] * n_l + [0.0] * n_c + [_WIDTH_PAD] * (n_a + n_s)),
            "line_disc_ends": line_disc_ends.view(-1),
            "line_disc_batch": torch.arange(b, device=device).repeat_interleave(n_ld),
            "line_end_step": (torch.arange(n_ld, device=device) < n_l).to(torch.float32),
            "stroke_batch": torch.arange(b, device=device).repeat_interleave(n_s * (_STROKE_VERTICES - 1)),
            "stroke_step": torch.arange(_STROKE_VERTICES - 1, device=device, dtype=torch.float32),
        }
        self._layouts[key] = layout
        while len(self._layouts) > _MAX_LAYOUTS:
            try:
                self._layouts.popitem(last=False)
            except KeyError:  # emptied meanwhile by a call from another thread
                break
        return layout

    def _segments(self, d: dict[str, torch.Tensor], spatial: tuple[int, ...]) -> dict[str, torch.Tensor]:
        """
        Turn the draws into capsule segments: ``p0``, ``p1`` (N, D), ``radius`` (N,) (negative = unused) and
        ``batch`` (N,); under coverage control also the order values ``val0``, ``val1`` at both ends (rank of
        the primitive in the random drawing order + position along it in [0, 1)).
        """
        dims = len(spatial)
        counts = d["counts"]
        device = counts.device
        b = counts.shape[0]
        layout = self._layout(b, spatial, device)
        side = layout["side"]
        n_l, n_c, n_a, n_s = self._slots(spatial)
        n_ld = n_l + n_c
        ordered = self.coverage is not None
        # slot i of a primitive kind is drawn in sample b when its index is below the sample's count of the kind
        used = layout["slot_index"] < counts.index_select(1, layout["slot_kind"])
        radius = torch.addcmul(layout["radius_pad"], d["size"], layout["radius_scale"])
        radius_ld, radius_a, radius_s = torch.split(torch.where(used, radius, -1.0), [n_ld, n_a, n_s], dim=1)
        points = d["points"] * side
        arc_c = points[:, 2 * n_l + n_c :]
        if ordered:
            rank = torch.argsort(torch.argsort(d["order_keys"], dim=1), dim=1).to(torch.float32)
            rank_ld, rank_a, rank_s = torch.split(rank, [n_ld, n_a, n_s], dim=1)
        parts = []  # (p0, p1, radius, batch[, val0, val1]) columns of N capsules each

        # Lines (OpenCV thickness t, capsule radius t / 2 + pad) and discs / balls (capsules of length 0).
        line_disc = points.view(-1, dims).index_select(0, layout["line_disc_ends"]).view(2, -1, dims)
        part = [line_disc[0], line_disc[1], radius_ld.reshape(-1), layout["line_disc_batch"]]
        if ordered:
            part += [rank_ld.reshape(-1), (rank_ld + layout["line_end_step"]).view(-1)]
        parts.append(part)

        # Elliptic arcs on a random plane, parametric angles in [3, 180] degrees, as a polyline of chords
        # whose sagitta stays below ~0.5 px (Delta^2 * max_axis / 8), and under coverage control no longer
        # than one chunk.
        g1, g2 = d["arc_dirs"].unbind(2)
        u = g1 / torch.linalg.vector_norm(g1, dim=-1, keepdim=True).clamp_(min=1e-12)
        v = torch.addcmul(g2, (g2 * u).sum(-1, keepdim=True), u, value=-1).add_(torch.roll(u, 1, -1), alpha=1e-4)
        v = v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)
        theta0, theta1 = torch.deg2rad(d["arc_deg"]).aminmax(dim=-1)
        span = theta1 - theta0
        semi_a, semi_b = d["arc_a"], d["arc_b"]
        max_axis = torch.maximum(semi_a, semi_b)
        n_chords = torch.ceil(span * max_axis.mul(0.25).sqrt_())
        chunk = self._chunk_length(dims)
        if chunk is not None:
            n_chords = torch.maximum(n_chords, torch.ceil(span * max_axis / chunk))
        n_chords = torch.where(used[:, n_ld : n_ld + n_a], n_chords.clamp_(min=1), 0.0)
        flat_chords = n_chords.view(-1).long()
        arc_id = torch.repeat_interleave(flat_chords)
        first = (torch.cumsum(flat_chords, 0) - flat_chords).to(torch.float32).view(b, n_a)
        # One table of per-arc columns (centre, a u, b v, first chord, angles, radius[, rank]) gathered per
        # chord by one index_select.
        pieces = [arc_c, semi_a[..., None] * u, semi_b[..., None] * v]
        pieces += [t[..., None] for t in (first, theta0, span / n_chords.clamp(min=1), radius_a)]
        if ordered:
            pieces += [rank_a[..., None], 1 / n_chords.clamp(min=1)[..., None]]
        table = torch.cat(pieces, -1)
        per_chord = table.view(b * n_a, table.shape[-1]).index_select(0, arc_id)
        c_a, u_a, v_a = (per_chord[:, k * dims : (k + 1) * dims] for k in range(3))
        first_a, th0, d_theta, radius_arc = per_chord[:, 3 * dims : 3 * dims + 4].unbind(1)
        local = torch.arange(arc_id.numel(), device=device, dtype=torch.float32) - first_a
        start = torch.addcmul(th0, local, d_theta)
        angles = torch.stack([start, start + d_theta])[..., None]  # (2, N, 1): both ends of every chord
        ends = torch.addcmul(torch.addcmul(c_a, torch.cos(angles), u_a), torch.sin(angles), v_a)
        part = [ends[0], ends[1], radius_arc, torch.div(arc_id, n_a, rounding_mode="floor")]
        if ordered:
            rank_arc, inv_m = per_chord[:, 3 * dims + 4 :].unbind(1)
            s0 = local * inv_m
            part += [rank_arc + s0, rank_arc + s0 + inv_m]
        parts.append(part)

        # Free-form brush strokes: a random walk whose direction is the running sum of Gaussian turns.
        if n_s > 0:
            direction = F.normalize(torch.cumsum(d["stroke_turn"], dim=2) + 1e-6, dim=-1)
            step = (0.05 + 0.15 * d["stroke_len"]) * side.mean()
            start = d["stroke_start"] * side
            verts = torch.cat([start, start + torch.cumsum(direction * step, dim=2)], dim=2)
            verts = torch.minimum(verts.clamp(min=0), side - 1)
            n_seg = d["stroke_nseg"]
            k = layout["stroke_step"]
            radius = torch.where(k < n_seg, radius_s[..., None], -1.0)
            part = [
                verts[:, :, :-1].reshape(-1, dims),
                verts[:, :, 1:].reshape(-1, dims),
                radius.reshape(-1),
                layout["stroke_batch"],
            ]
            if ordered:
                r_s = rank_s[..., None]
                part += [(r_s + k / n_seg).view(-1), (r_s + (k + 1) / n_seg).view(-1)]
            parts.append(part)

        names = ("p0", "p1", "radius", "batch", "val0", "val1")
        return {name: torch.cat(col) for name, col in zip(names, zip(*parts))}

    def _chunk_length(self, dims: int) -> float | None:
        """Capsule length for splitting segments: the cut resolution under coverage control, and in 3D a
        bound on the bounding-box rows; ``None`` = no splitting (raw 2D masks)."""
        if self.chunk_length is not None:
            return float(self.chunk_length)
        if dims == 3:
            return 8.0
        return 64.0 if self.coverage is not None else None

    # ------------------------------------------------------------------ rendering
    def _render_controlled(
        self, spans: dict[str, torch.Tensor], n_total: int, target: torch.Tensor, batch_size: int, spatial, generator
    ) -> torch.Tensor:
        """
        Order field thresholded per sample at the target coverage, as int32 0 / 1. The field holds, per pixel, the
        smallest quantised order value ``floor(value * _SUB_BINS)`` of the spans covering it (int32; the last bin
        where none does), so a threshold j keeps exactly the primitives (and parts of one) drawn before j.
        """
        n_pix = math.prod(spatial)
        device = spans["row"].device
        # Field of quantised order values per sample; on CPU int16 halves the passes over the block tables
        # (other devices keep int32, whose atomic minimum every backend has).
        n_bins = n_total * _SUB_BINS + 1
        small = device.type == "cpu" and n_bins <= torch.iinfo(torch.int16).max
        dtype = torch.int16 if small else torch.int32
        key = (spans["value"] * _SUB_BINS).to(dtype)
        field = row_interval_min(
            spans["row"], spans["x0"], spans["x1"], key, batch_size * n_pix // spatial[-1], spatial[-1], n_bins - 1
        )
        # Keys carry the sample offset b * n_bins, so one bincount gives every sample's histogram; the last
        # bin of a sample collects its uncovered pixels.
        offs = torch.arange(batch_size, device=device, dtype=torch.int32) * n_bins
        field = field.view(batch_size, n_pix).to(torch.int32) + offs[:, None]
        counts = torch.bincount(field.flatten(), minlength=batch_size * n_bins).view(batch_size, n_bins)

        target = target.to(torch.float32)
        short = counts[:, -1] > (1.0 - target) * n_pix
        if bool(short.any()):
            # The union of all primitives of these samples is below the target: grow them by dilation rings.
            local = field - offs[:, None]
            local = torch.where(local == n_bins - 1, _UNCOVERED, local)
            idx = torch.nonzero(short).flatten()
            grown, n_bins = self._grow(local[idx].view(-1, 1, *spatial), n_total, target[idx], generator)
            local = local.index_put((idx,), grown.view(-1, n_pix))
            offs = torch.arange(batch_size, device=device, dtype=torch.int32) * n_bins
            field = local.clamp(max=n_bins - 1) + offs[:, None]
            counts = torch.bincount(field.flatten(), minlength=batch_size * n_bins).view(batch_size, n_bins)
        # Hole ratio of the threshold "key < j" for j = 0 .. n_bins - 1.
        cover = (torch.cumsum(counts, 1) - counts).to(torch.float32) / n_pix
        lo, hi = self.coverage  # type: ignore[misc]
        outside = (cover <= lo) | (cover > hi)
        j = ((cover - target[:, None]).abs() + outside.to(torch.float32)).argmin(1)
        # field < threshold as (threshold - field) clamped to {0, 1}: integer arithmetic and one int32 -> float32
        # conversion are about twice as fast on CPU as a broadcast comparison converted from bool.
        mask = ((j.to(torch.int32) + offs)[:, None] - field).clamp_(0, 1)
        return mask.view(batch_size, *spatial)

    @staticmethod
    def _grow(field: torch.Tensor, n_total: int, target: torch.Tensor, generator) -> tuple[torch.Tensor, int]:
        """
        Grow every union by alternating cube / cross dilation rings until all masks reach their targets;
        ring k gets the keys of level ``n_total + k``, ordered inside the ring by smooth noise so that a
        partly used ring grows in blobs, not salt and pepper (an empty union starts from the noise's peak).
        Returns the new field and its number of bins.
        """
        batch_size, spatial = field.shape[0], tuple(field.shape[2:])
        gen_device = generator.device if generator is not None else torch.device("cpu")
        coarse = torch.rand(batch_size, 1, *(max(2, s // 16) for s in spatial), generator=generator, device=gen_device)
        mode = "bilinear" if len(spatial) == 2 else "trilinear"
        noise = F.interpolate(coarse.to(field.device), size=spatial, mode=mode, align_corners=False)
        noise_key = (noise.clamp(0, 1) * (_SUB_BINS - 1)).to(torch.int32)
        covered = field < _UNCOVERED
        # A mask whose primitives all missed the image has nothing to grow from: seed it at the peak of its
        # noise, ahead of the first ring.
        empty = torch.nonzero(~covered.flatten(1).any(1)).flatten()
        if empty.numel():
            peak = noise.flatten(1).argmax(1).index_select(0, empty)
            field, covered = field.flatten(1).clone(), covered.flatten(1).clone()
            field[empty, peak] = n_total * _SUB_BINS
            covered[empty, peak] = True
            field, covered = field.view(batch_size, 1, *spatial), covered.view(batch_size, 1, *spatial)
        missing = (1.0 - target) * math.prod(spatial)  # uncovered pixels allowed at the target
        n_levels = n_total
        for step in range(sum(spatial)):
            grown = _dilate(covered, cross=step % 2 == 1)
            field = torch.where(grown & ~covered, noise_key + (n_total + step) * _SUB_BINS, field)
            covered = grown
            n_levels = n_total + step + 1
            if not bool(((~covered).flatten(1).sum(1) > missing).any()):
                break
        return field, n_levels * _SUB_BINS + 1
