"""Box masks for CutMix / Cutout consistency regularisation.

French et al., "Semi-supervised semantic segmentation needs strong, varied perturbations",
BMVC 2020 (reference implementation ``Britefury/cutmix-semisup-seg``, ``mask_gen.py``).

One :class:`BoxMaskGenerator` owns the geometry. It works on ``(B, 1, *spatial)`` tensors on any
device, 2D or 3D; :class:`RandBoxMask` and :class:`RandBoxMaskd` call it with ``B = 1``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms import MapTransform, Randomizable, RandomizableTransform
from monai.utils import TransformBackends, convert_to_dst_type

from monai_masksup.keys import PluginKeys

from .spatial_size import as_spatial_size, check_channel_first_image, shared_spatial_size

__all__ = ["BoxMaskGenerator", "RandBoxMask", "RandBoxMaskd"]

BoxDraws = tuple[torch.Tensor, "torch.Tensor | None", torch.Tensor]


def _as_prop_range(prop_range: float | Sequence[float]) -> tuple[float, float]:
    if isinstance(prop_range, (int, float)):
        lo = hi = float(prop_range)
    else:
        values = tuple(prop_range)
        if len(values) != 2:
            raise ValueError(f"prop_range must be a number or a (lo, hi) pair, got {prop_range!r}.")
        lo, hi = float(values[0]), float(values[1])
    if not (0.0 <= lo <= 1.0 and 0.0 <= hi <= 1.0):
        raise ValueError(f"prop_range must lie in [0, 1], got {prop_range!r}.")
    if lo > hi:
        raise ValueError(f"prop_range must have lo <= hi, got {prop_range!r}.")
    return lo, hi


def _image_spatial_size(img: NdarrayOrTensor, name: str) -> tuple[int, ...]:
    """Spatial shape of a channel-first 2D/3D image; ``name`` identifies it in the error message."""
    check_channel_first_image(img, name)
    return as_spatial_size(img.shape[1:], f"spatial size of {name}")


class BoxMaskGenerator:
    """Random rectangular (2D) or cuboid (3D) box masks, as in CutMix / Cutout of French et al. 2020.

    French et al., "Semi-supervised semantic segmentation needs strong, varied perturbations", BMVC 2020.

    Each sample gets ``n_boxes`` boxes, combined by XOR (a pixel covered by an even number of
    boxes is background). With ``prop_by_area=True`` the box area (2D) or volume (3D) fraction
    is ``p ~ U(lo, hi)``; with a random aspect ratio the side fractions are ``p ** w_i`` where the
    weights ``w`` are uniform on the simplex (2D: ``w = (u, 1 - u)``, so the height fraction is
    ``p ** u`` and the width fraction ``p / height``, exactly as the reference; 3D: ``w`` are the
    spacings of two sorted uniforms, i.e. a log-uniform split of ``p`` into three sides whose
    product is ``p``). Each side is then scaled by ``(1 / n_boxes) ** (1 / ndim)`` so every box
    has fraction ``p / n_boxes`` (``sqrt(1 / n_boxes)`` in 2D, as the reference). Box sizes are
    ``round(fraction * size)`` and, ``within_bounds=True``, the box start is
    ``round((size - box) * u_pos)``, so a box never leaves the image. ``p == 0`` gives no box.

    The uniform draws are made first (:meth:`draw_uniforms`, or :meth:`draw_uniforms_numpy`
    with a ``numpy.random.RandomState``, which draws in the reference's order) and turned into
    masks by :meth:`from_draws`; the geometry is computed in float64 on the CPU (a few numbers
    per box) so that rounding matches numpy exactly, and only the mask itself is built on
    ``device``.

    Args:
        prop_range: box area/volume fraction ``p`` (fixed) or range ``(lo, hi)`` to draw it from,
            within ``[0, 1]``. With ``prop_by_area=False`` it is the range of each side fraction.
        n_boxes: number of boxes per mask, combined by XOR.
        random_aspect_ratio: draw the aspect ratio at random; otherwise boxes are square/cubic
            (area mode) or all sides share one fraction (side mode).
        prop_by_area: ``prop_range`` is the area/volume fraction; otherwise it is each side's fraction.
        within_bounds: keep boxes inside the image. If ``False`` the uniform position is the box
            centre and the box is clipped at the border; unlike the reference, which lets a
            negative start index wrap around (numpy slicing), a box is never wrapped.
        invert: ``True`` (the setting of every published run): box = 1 on a background of 0.
            ``False``: background 1, box 0.

    Raises:
        ValueError: ``prop_range`` outside ``[0, 1]`` or with ``lo > hi``; ``n_boxes < 1``.

    Example::

        gen = BoxMaskGenerator(prop_range=0.5)
        masks = gen(8, (224, 224), device="cuda")  # (8, 1, 224, 224), 1 inside the box
        mixed = img_a * (1 - masks) + img_b * masks
    """

    def __init__(
        self,
        prop_range: float | Sequence[float] = 0.5,
        n_boxes: int = 1,
        random_aspect_ratio: bool = True,
        prop_by_area: bool = True,
        within_bounds: bool = True,
        invert: bool = True,
    ) -> None:
        self.prop_range = _as_prop_range(prop_range)
        if isinstance(n_boxes, bool) or int(n_boxes) != n_boxes or n_boxes < 1:
            raise ValueError(f"n_boxes must be an integer >= 1, got {n_boxes!r}.")
        self.n_boxes = int(n_boxes)
        self.random_aspect_ratio = bool(random_aspect_ratio)
        self.prop_by_area = bool(prop_by_area)
        self.within_bounds = bool(within_bounds)
        self.invert = bool(invert)

    # ------------------------------------------------------------------ draws
    def _draw_layout(self, ndim: int) -> tuple[bool, int]:
        """Return (whether aspect uniforms are drawn, number of prop draws per box)."""
        if self.prop_by_area:
            return self.random_aspect_ratio, 1
        return False, ndim if self.random_aspect_ratio else 1

    def draw_uniforms(
        self, batch_size: int, spatial_ndim: int, generator: torch.Generator | None = None
    ) -> BoxDraws:
        """Draw the uniforms for ``batch_size`` masks with torch (float64, CPU).

        Args:
            batch_size: number of masks.
            spatial_ndim: 2 or 3.
            generator: optional ``torch.Generator`` (any device) for reproducibility.

        Returns:
            ``(props, aspect_u, pos_u)`` as accepted by :meth:`from_draws`: ``props`` (B, n_boxes)
            (side mode with random aspect: (B, n_boxes, ndim)), ``aspect_u`` (B, n_boxes, ndim - 1)
            or ``None``, ``pos_u`` (B, n_boxes, ndim).
        """
        if spatial_ndim not in (2, 3):
            raise ValueError(f"spatial_ndim must be 2 or 3, got {spatial_ndim!r}.")
        device = generator.device if generator is not None else torch.device("cpu")
        lo, hi = self.prop_range
        b, n = int(batch_size), self.n_boxes

        def uniform(*shape: int) -> torch.Tensor:
            return torch.rand(shape, generator=generator, device=device, dtype=torch.float64).cpu()

        with_aspect, n_props = self._draw_layout(spatial_ndim)
        props = lo + (hi - lo) * (uniform(b, n, n_props) if n_props > 1 else uniform(b, n))
        aspect_u = uniform(b, n, spatial_ndim - 1) if with_aspect else None
        pos_u = uniform(b, n, spatial_ndim)
        return props, aspect_u, pos_u

    def draw_uniforms_numpy(self, batch_size: int, spatial_ndim: int, rng: np.random.RandomState) -> BoxDraws:
        """Draw the uniforms with a numpy ``RandomState`` in the reference's order and shapes.

        With the same ``RandomState`` state as the reference's ``generate_params`` (2D), the
        masks from :meth:`from_draws` are identical to the reference's.

        Args:
            batch_size: number of masks.
            spatial_ndim: 2 or 3.
            rng: the random state (e.g. a transform's ``self.R``).

        Returns:
            ``(props, aspect_u, pos_u)`` as float64 tensors, see :meth:`draw_uniforms`.
        """
        if spatial_ndim not in (2, 3):
            raise ValueError(f"spatial_ndim must be 2 or 3, got {spatial_ndim!r}.")
        lo, hi = self.prop_range
        b, n = int(batch_size), self.n_boxes
        with_aspect, n_props = self._draw_layout(spatial_ndim)
        if n_props > 1:
            # the reference draws one (B, n_boxes) array per axis, y first
            props = np.stack([rng.uniform(lo, hi, size=(b, n)) for _ in range(n_props)], axis=-1)
        else:
            props = rng.uniform(lo, hi, size=(b, n))
        aspect_u = rng.uniform(0.0, 1.0, size=(b, n, spatial_ndim - 1)) if with_aspect else None
        pos_u = rng.uniform(0.0, 1.0, size=(b, n, spatial_ndim))
        as_t = lambda a: None if a is None else torch.from_numpy(np.asarray(a, dtype=np.float64))  # noqa: E731
        return as_t(props), as_t(aspect_u), as_t(pos_u)

    # --------------------------------------------------------------- geometry
    def _side_fractions(self, props: torch.Tensor, aspect_u: torch.Tensor | None, ndim: int) -> torch.Tensor:
        """Side fractions (B, n_boxes, ndim) before the ``n_boxes`` scaling."""
        if not self.prop_by_area:
            if props.ndim == 3:
                if props.shape[-1] != ndim:
                    raise ValueError(f"props must have {ndim} side fractions per box, got shape {tuple(props.shape)}.")
                return props.clone()
            return props[..., None].expand(*props.shape, ndim).clone()

        if props.ndim != 2:
            raise ValueError(f"props must have shape (B, n_boxes) in area mode, got {tuple(props.shape)}.")
        zero = props == 0.0
        if not self.random_aspect_ratio:
            side = torch.sqrt(props) if ndim == 2 else props ** (1.0 / ndim)
            return side[..., None].expand(*props.shape, ndim).clone()

        if aspect_u is None:
            raise ValueError("aspect_u is required when random_aspect_ratio=True and prop_by_area=True.")
        if aspect_u.ndim == 2:
            aspect_u = aspect_u[..., None]
        if aspect_u.shape[-1] != ndim - 1:
            raise ValueError(f"aspect_u must have {ndim - 1} uniforms per box, got shape {tuple(aspect_u.shape)}.")
        # weights on the simplex: spacings of the sorted uniforms (2D: just u); only the first
        # ndim - 1 are needed because the last side is p / prod(others), as the reference does
        sorted_u = torch.sort(aspect_u, dim=-1).values
        weights = torch.diff(sorted_u, dim=-1, prepend=torch.zeros_like(sorted_u[..., :1]))
        # exp(w * log p) rather than p ** w: the reference's exact float64 expression
        leading = torch.exp(weights * torch.log(props)[..., None])
        last = props / leading.prod(dim=-1)
        sides = torch.cat([leading, last[..., None]], dim=-1)
        # p == 0 gives log(0) = -inf and 0 / 0 = nan: no box, as the reference
        return torch.where(zero[..., None], torch.zeros_like(sides), sides)

    def box_bounds(
        self,
        props: torch.Tensor | np.ndarray,
        aspect_u: torch.Tensor | np.ndarray | None,
        pos_u: torch.Tensor | np.ndarray,
        spatial_size: Sequence[int],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Integer box corners from the uniform draws.

        Args:
            props: (B, n_boxes) area/volume fractions (side mode: (B, n_boxes[, ndim]) side fractions).
            aspect_u: (B, n_boxes) (2D) or (B, n_boxes, ndim - 1) uniforms, or ``None`` when unused.
            pos_u: (B, n_boxes, ndim) uniforms in [0, 1), last axis in spatial order (y, x[, z]).
            spatial_size: the mask's spatial shape.

        Returns:
            ``(start, stop)`` int64 CPU tensors (B, n_boxes, ndim); box ``i`` covers
            ``start[i, d] <= index_d < stop[i, d]`` on every axis ``d``, clipped to the image.
        """
        size = as_spatial_size(spatial_size)
        ndim = len(size)
        f64 = lambda a: torch.as_tensor(a, dtype=torch.float64).cpu()  # noqa: E731
        props_t, pos_t = f64(props), f64(pos_u)
        aspect_t = None if aspect_u is None else f64(aspect_u)
        if pos_t.ndim != 3 or pos_t.shape[-1] != ndim:
            raise ValueError(f"pos_u must have shape (B, n_boxes, {ndim}), got {tuple(pos_t.shape)}.")

        sides = self._side_fractions(props_t, aspect_t, ndim)
        n = sides.shape[1]
        fac = math.sqrt(1.0 / n) if ndim == 2 else (1.0 / n) ** (1.0 / ndim)
        extent = torch.tensor(size, dtype=torch.float64)
        box = torch.round(sides * fac * extent)  # round half to even, as np.round
        if self.within_bounds:
            start = torch.round((extent - box) * pos_t)
            stop = start + box
        else:
            centre = torch.round(extent * pos_t)
            start, stop = centre - box * 0.5, centre + box * 0.5
        # int() truncates towards zero; clipping replaces the reference's wrap-around of
        # negative starts (only reachable with within_bounds=False)
        limit = extent.to(torch.int64)
        start = torch.minimum(torch.trunc(start).to(torch.int64).clamp_min(0), limit)
        stop = torch.minimum(torch.trunc(stop).to(torch.int64).clamp_min(0), limit)
        return start, stop

    # ------------------------------------------------------------------ masks
    def empty_mask(
        self, batch_size: int, spatial_size: Sequence[int], device: torch.device | str | None = None
    ) -> torch.Tensor:
        """Masks without any box: zeros if ``invert`` else ones, float32 (B, 1, *spatial)."""
        size = as_spatial_size(spatial_size)
        return torch.full((int(batch_size), 1, *size), 0.0 if self.invert else 1.0, dtype=torch.float32, device=device)

    def from_draws(
        self,
        props: torch.Tensor | np.ndarray,
        aspect_u: torch.Tensor | np.ndarray | None,
        pos_u: torch.Tensor | np.ndarray,
        spatial_size: Sequence[int],
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Build the masks from given uniform draws (see :meth:`box_bounds` for their shapes).

        Args:
            props: box fractions, (B, n_boxes) in area mode.
            aspect_u: aspect-ratio uniforms or ``None`` when unused.
            pos_u: position uniforms (B, n_boxes, ndim).
            spatial_size: the mask's spatial shape, 2 or 3 dimensions.
            device: where to build the masks (default CPU).

        Returns:
            float32 tensor (B, 1, *spatial_size) in {0, 1}.

        Raises:
            ValueError: wrong spatial rank or draw shapes.
        """
        size = as_spatial_size(spatial_size)
        start, stop = self.box_bounds(props, aspect_u, pos_u, size)
        start, stop = start.to(device), stop.to(device)
        b, n, ndim = start.shape
        # XOR of n boxes without a (B, n, *spatial) tensor: a difference array gets +-1 at the
        # 2**ndim corners of every box, a cumulative sum per axis turns it into the number of
        # boxes covering each pixel, and its parity is the XOR (overlaps toggle back to 0)
        padded = [s + 1 for s in size]
        corners = torch.cartesian_prod(*[torch.tensor([0, 1], device=start.device)] * ndim).reshape(-1, ndim)
        bounds = torch.stack([start, stop], dim=-1)  # (B, n, ndim, 2)
        corner_idx = torch.gather(
            bounds[:, :, None].expand(b, n, len(corners), ndim, 2),
            dim=4,
            index=corners.reshape(1, 1, -1, ndim, 1).expand(b, n, -1, ndim, 1),
        )[..., 0]  # (B, n, 2**ndim, ndim): start or stop per axis for every corner
        sign = 1 - 2 * (corners.sum(dim=-1) % 2)  # (2**ndim,)
        flat = torch.arange(b, device=start.device).reshape(b, 1, 1)
        for d in range(ndim):
            flat = flat * padded[d] + corner_idx[..., d]
        counts = torch.zeros(b * math.prod(padded), dtype=torch.int32, device=start.device)
        counts.index_add_(0, flat.reshape(-1), sign.to(torch.int32).expand(b, n, -1).reshape(-1))
        counts = counts.reshape(b, 1, *padded)
        for d in range(ndim):
            counts = counts.cumsum(dim=2 + d, dtype=torch.int32)
        parity = counts[(slice(None), slice(None)) + tuple(slice(0, s) for s in size)] % 2
        masks = parity.to(torch.float32)
        return masks if self.invert else 1.0 - masks

    def __call__(
        self,
        batch_size: int,
        spatial_size: Sequence[int],
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Generate ``batch_size`` random box masks.

        Args:
            batch_size: number of masks B.
            spatial_size: (H, W) or (H, W, D).
            device: device of the returned masks (default CPU).
            generator: optional ``torch.Generator`` for reproducibility.

        Returns:
            float32 tensor (B, 1, *spatial_size) in {0, 1}; with ``invert=True`` 1 marks the boxes.

        Raises:
            ValueError: ``spatial_size`` not 2D/3D or not positive; negative ``batch_size``.
        """
        size = as_spatial_size(spatial_size)
        if int(batch_size) < 0:
            raise ValueError(f"batch_size must be >= 0, got {batch_size!r}.")
        draws = self.draw_uniforms(int(batch_size), len(size), generator=generator)
        return self.from_draws(*draws, size, device=device)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(prop_range={self.prop_range}, n_boxes={self.n_boxes}, "
            f"random_aspect_ratio={self.random_aspect_ratio}, prop_by_area={self.prop_by_area}, "
            f"within_bounds={self.within_bounds}, invert={self.invert})"
        )


class RandBoxMask(RandomizableTransform):
    """Draw a CutMix / Cutout box mask of the input's spatial size.

    French et al., "Semi-supervised semantic segmentation needs strong, varied perturbations", BMVC 2020.
    The geometry is :class:`BoxMaskGenerator`'s; the uniforms come from ``self.R`` (in the
    reference's draw order), so ``set_random_state`` makes the masks reproducible.

    It returns the mask itself, for mixing two images (CutMix) or cutting one by hand. To cut
    an image directly (Cutout), ``RandHoleMask(mask_generator=BoxMaskGenerator(...))`` draws the
    same geometry through the :class:`MaskGenerator` protocol (with ``torch`` draws, not the
    reference's numpy order) and applies it with :func:`apply_mask`.

    Args:
        prop_range: box area/volume fraction or ``(lo, hi)`` range, see :class:`BoxMaskGenerator`.
        n_boxes: boxes per mask, combined by XOR.
        random_aspect_ratio: draw the aspect ratio at random.
        prop_by_area: ``prop_range`` is the area fraction (else each side's fraction).
        within_bounds: keep boxes inside the image.
        invert: ``True``: box = 1, background 0; ``False``: the opposite.
        prob: probability of drawing a box; otherwise the mask has no box (all background).

    Raises:
        ValueError: invalid generator arguments (see :class:`BoxMaskGenerator`), or an input
            whose spatial rank is not 2 or 3.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        prop_range: float | Sequence[float] = 0.5,
        n_boxes: int = 1,
        random_aspect_ratio: bool = True,
        prop_by_area: bool = True,
        within_bounds: bool = True,
        invert: bool = True,
        prob: float = 1.0,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        self.generator = BoxMaskGenerator(
            prop_range=prop_range,
            n_boxes=n_boxes,
            random_aspect_ratio=random_aspect_ratio,
            prop_by_area=prop_by_area,
            within_bounds=within_bounds,
            invert=invert,
        )
        self._draws: BoxDraws | None = None

    def randomize(self, spatial_size: Sequence[int]) -> None:
        """Draw whether to apply and the box uniforms for an image of ``spatial_size``."""
        size = as_spatial_size(spatial_size)
        super().randomize(None)
        self._draws = self.generator.draw_uniforms_numpy(1, len(size), self.R) if self._do_transform else None

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first image (C, H, W) or (C, H, W, D), numpy or torch.
            randomize: draw new uniforms; ``False`` reuses the last draws (same box fractions
                and relative positions, scaled to this image's size).

        Returns:
            the mask (1, *spatial) float32, of the input's type (numpy in, numpy out).
        """
        spatial = _image_spatial_size(img, "img")
        if randomize or (self._do_transform and self._draws is None):
            self.randomize(spatial)
        if self._do_transform and self._draws is not None:
            if self._draws[2].shape[-1] != len(spatial):
                raise ValueError(
                    f"img has {len(spatial)} spatial dimensions but the last draws were for "
                    f"{self._draws[2].shape[-1]}; call with randomize=True."
                )
            mask = self.generator.from_draws(*self._draws, spatial)[0]
        else:
            mask = self.generator.empty_mask(1, spatial)[0]
        dtype = torch.float32 if isinstance(img, torch.Tensor) else np.float32
        out, *_ = convert_to_dst_type(mask, dst=img, dtype=dtype)
        return out


class RandBoxMaskd(Randomizable, MapTransform):
    """Dictionary version of :class:`RandBoxMask`: write a box mask under ``mask_key``.

    The mask has the spatial size (and array type) of the first of ``keys``; every other key
    must share that spatial size, since the same mask is meant to mix or cut all of them.
    The wrapped :class:`RandBoxMask` (``self.box_mask``) draws ``prob`` too, so that the mask
    without a box is made in one place.

    Args:
        keys: keys of the images the mask is made for (the first one sets its size).
        mask_key: where to store the (1, *spatial) mask.
        prop_range: box area/volume fraction or ``(lo, hi)`` range.
        n_boxes: boxes per mask, combined by XOR.
        random_aspect_ratio: draw the aspect ratio at random.
        prop_by_area: ``prop_range`` is the area fraction (else each side's fraction).
        within_bounds: keep boxes inside the image.
        invert: ``True``: box = 1, background 0; ``False``: the opposite.
        prob: probability of drawing a box; otherwise the stored mask has no box.
        allow_missing_keys: do not raise if a key is missing.

    Raises:
        ValueError: the keys' spatial sizes differ, or invalid generator arguments.
    """

    backend = RandBoxMask.backend

    def __init__(
        self,
        keys: KeysCollection,
        mask_key: str = PluginKeys.BOX_MASK,
        prop_range: float | Sequence[float] = 0.5,
        n_boxes: int = 1,
        random_aspect_ratio: bool = True,
        prop_by_area: bool = True,
        within_bounds: bool = True,
        invert: bool = True,
        prob: float = 1.0,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.mask_key = mask_key
        self.box_mask = RandBoxMask(
            prop_range=prop_range,
            n_boxes=n_boxes,
            random_aspect_ratio=random_aspect_ratio,
            prop_by_area=prop_by_area,
            within_bounds=within_bounds,
            invert=invert,
            prob=prob,
        )

    @property
    def prob(self) -> float:
        """Probability of drawing a box (drawn by ``self.box_mask``)."""
        return self.box_mask.prob

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> RandBoxMaskd:
        super().set_random_state(seed, state)
        self.box_mask.set_random_state(seed, state)
        return self

    def randomize(self, spatial_size: Sequence[int]) -> None:  # type: ignore[override]
        """Draw whether to draw a box and its uniforms, see :meth:`RandBoxMask.randomize`."""
        self.box_mask.randomize(spatial_size)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        present = list(self.key_iterator(d))
        if not present:
            return d
        shared_spatial_size(d, present, type(self).__name__)
        d[self.mask_key] = self.box_mask(d[present[0]], randomize=True)
        return d
