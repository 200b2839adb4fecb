"""Array and dictionary transforms that punch random irregular holes into an image (MaskSup input masking)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from .hole_mask_generator import HoleMaskGenerator
from .spatial_size import check_channel_first_image

__all__ = ["RandHoleMask", "RandHoleMaskd", "apply_hole_mask", "check_channel_first_image", "masked_keys_for"]


def masked_keys_for(keys: tuple, masked_key: str | Sequence[str]) -> tuple[str, ...]:
    """
    One output key per input key for the dictionary masking transforms.

    Args:
        keys: the transform's input keys.
        masked_key: a key, or one key per input key, for the masked copies.

    Returns:
        the masked keys as a tuple, aligned with ``keys``.

    Raises:
        ValueError: when the number of masked keys does not match ``keys``.
    """
    masked = (masked_key,) if isinstance(masked_key, str) else tuple(masked_key)
    if len(masked) != len(keys):
        raise ValueError(f"masked_key needs one key per key in keys={keys}, got {masked_key!r}.")
    return masked


def apply_hole_mask(
    img: NdarrayOrTensor, hole: torch.Tensor, fill_value: float = 0.0
) -> tuple[NdarrayOrTensor, NdarrayOrTensor]:
    """
    Replace the hole pixels of every channel of ``img`` by ``fill_value``.

    Args:
        img: channel-first image ``(C, *spatial)``, numpy array, tensor or MetaTensor.
        hole: float mask ``(1, *spatial)``, 1 = hole.
        fill_value: value written into the holes.

    Returns:
        ``(masked, mask)`` of the same type as ``img`` (a MetaTensor keeps its meta data); ``masked`` is a
        new array, ``img`` is not modified; ``mask`` is float32 ``(1, *spatial)``.

    Raises:
        ValueError: when the spatial shapes of ``img`` and ``hole`` differ, or ``fill_value`` does not fit an
            integer image's dtype.
    """
    # Plain tensors inside (a MetaTensor's operations cost tens of microseconds each); the results take the
    # type and, for a MetaTensor, the meta data of `img` back in convert_to_dst_type.
    img_t = convert_to_tensor(img, track_meta=False)
    if tuple(hole.shape[1:]) != tuple(img_t.shape[1:]):
        raise ValueError(
            f"hole mask spatial shape {tuple(hole.shape[1:])} differs from image {tuple(img_t.shape[1:])}."
        )
    hole = convert_to_tensor(hole, track_meta=False).to(img_t.device)
    masked = None
    if img_t.is_floating_point() and img_t.device.type == "cpu":
        # image * (1 - hole) + fill * hole: branch-free, several times faster on CPU than a select with a random
        # mask (0.1 against 0.53 ms for 3 x 224 x 224). A non-finite image value in a hole would survive the
        # product (nan * 0 = nan), so an image with any non-finite value takes the select below; one float32
        # sum finds them (and sends huge finite images there too, which is right). Other devices keep the
        # select, which has no branches to mispredict there and needs no host sync for that check.
        hole_t = hole.to(img_t.dtype)
        masked = torch.add(img_t * (1 - hole_t), hole_t, alpha=fill_value)
        if not bool(torch.isfinite(masked.sum(dtype=torch.float32))):
            masked = None
    if masked is None:
        # torch.where keeps the image dtype (an integer image stays integer) and never aliases the input.
        try:
            fill = torch.as_tensor(fill_value, dtype=img_t.dtype, device=img_t.device)
        except RuntimeError as e:  # e.g. a negative fill for a uint8 image
            raise ValueError(f"fill_value {fill_value} does not fit the image dtype {img_t.dtype}: {e}") from e
        masked = torch.where(hole.bool(), fill, img_t)
    out, *_ = convert_to_dst_type(masked, dst=img)
    mask_out, *_ = convert_to_dst_type(hole, dst=img, dtype=torch.float32)
    return out, mask_out


class RandHoleMask(RandomizableTransform):
    """
    Fill random irregular holes (lines, discs, elliptic arcs, strokes) of a channel-first image with
    ``fill_value``; all channels share the mask. This is the input masking of MaskSup (Zunair and Ben Hamza,
    "Masked Supervised Learning for Semantic Segmentation", BMVC 2022), built on the irregular masks of
    Liu et al. 2018, see :py:class:`HoleMaskGenerator`.

    The mask is drawn in ``randomize`` by :py:class:`HoleMaskGenerator` with a CPU ``torch.Generator`` seeded
    from ``self.R``, on the image's device, so ``set_random_state`` reproduces it. With ``draw_batch=k`` the
    generator draws k masks at once (one seed per k masks) and the next k calls use them in turn: per mask
    this is several times cheaper (about 0.14 instead of 0.97 ms for raw 224 x 224 masks with k = 16, 0.92
    instead of 2.1 ms for "high", on one CPU thread; see docs/benchmarks.md), at the cost of keeping up to k
    masks in memory. The kept masks are dropped when the image size or device changes and by
    ``set_random_state``, so use it where the images share one size (after a resize or crop): with a new size
    at every call it would draw k masks to use one. ``draw_batch=1`` (default) draws one mask per call.

    Args:
        coverage: hole ratio bin "low" (0.01, 0.1], "high" (0.5, 0.6], a ``(lo, hi)`` pair or ``None`` (raw
            generator output). Ignored when ``mask_generator`` is given.
        fill_value: value written into the holes.
        prob: probability of masking; when not applied the image is returned unchanged and the mask is empty.
        return_mask: when True, ``__call__`` returns ``(masked_image, mask)``.
        mask_generator: a configured :py:class:`HoleMaskGenerator` to use instead of ``coverage``.
        draw_batch: masks drawn per call of the generator (kept for the next calls), at least 1.

    Raises:
        ValueError: for a bad ``coverage`` or ``draw_batch``, or an image that is not ``(C, H, W)`` /
            ``(C, H, W, D)``.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        coverage: str | tuple[float, float] | None = "high",
        fill_value: float = 0.0,
        prob: float = 1.0,
        return_mask: bool = False,
        mask_generator: HoleMaskGenerator | None = None,
        draw_batch: int = 1,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        self.mask_generator = mask_generator if mask_generator is not None else HoleMaskGenerator(coverage)
        self.fill_value = float(fill_value)
        self.return_mask = return_mask
        if int(draw_batch) < 1:
            raise ValueError(f"draw_batch must be >= 1, got {draw_batch}.")
        self.draw_batch = int(draw_batch)
        self._hole: torch.Tensor | None = None
        self._drawn: list[torch.Tensor] = []  # masks drawn ahead (draw_batch > 1), next one last
        self._drawn_for: tuple = ()  # (spatial size, device) of the masks drawn ahead
        self.last_mask: NdarrayOrTensor | None = None

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> RandHoleMask:
        super().set_random_state(seed, state)
        self._drawn = []  # masks drawn from the old state would break the reproducibility of the new one
        return self

    def _next_hole(self, spatial: tuple[int, ...], device: torch.device | str | None) -> torch.Tensor:
        """The next mask ``(1, *spatial)`` on ``device``: one of those drawn ahead, or a fresh draw."""
        key = (spatial, str(torch.device("cpu") if device is None else torch.device(device)))
        if key != self._drawn_for:
            self._drawn = []
        if not self._drawn:
            generator = torch.Generator().manual_seed(int(self.R.randint(0, 2**31 - 1)))
            masks = self.mask_generator.gen(self.draw_batch, spatial, device=device, generator=generator)
            self._drawn, self._drawn_for = list(masks.unbind(0))[::-1], key
        hole = self._drawn.pop()
        # a mask handed out must not keep the other masks of its draw alive
        return hole if self.draw_batch == 1 else hole.clone()

    def randomize(  # type: ignore[override]
        self, spatial_size: Sequence[int], device: torch.device | str | None = None
    ) -> None:
        """
        Draw whether to mask and, if so, the hole mask ``(1, *spatial_size)`` on ``device``.

        Args:
            spatial_size: (H, W) or (H, W, D).
            device: device of the mask (that of the image).
        """
        super().randomize(None)
        spatial = tuple(int(s) for s in spatial_size)
        if not self._do_transform:
            self._hole = torch.zeros((1, *spatial), dtype=torch.float32, device=device)
            return
        self._hole = self._next_hole(spatial, device)

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True):  # type: ignore[override]
        """
        Args:
            img: channel-first image ``(C, H, W)`` or ``(C, H, W, D)``.
            randomize: draw a new mask (False: reuse the mask of the last ``randomize``).

        Returns:
            the masked image, of the type of ``img``; ``(masked, mask)`` when ``return_mask``.
            The mask (float32 ``(1, *spatial)``, 1 = hole) is also kept in ``self.last_mask``.

        Raises:
            ValueError: when ``img`` is not channel-first 2D / 3D, or ``randomize=False`` and the last mask
                has another spatial shape.
        """
        check_channel_first_image(img)
        if randomize:
            device = img.device if isinstance(img, torch.Tensor) else None
            self.randomize(img.shape[1:], device=device)
        if self._hole is None:
            raise RuntimeError("RandHoleMask: call randomize() before __call__(randomize=False).")
        out, mask = apply_hole_mask(img, self._hole, self.fill_value)
        self.last_mask = mask
        return (out, mask) if self.return_mask else out


class RandHoleMaskd(MapTransform, RandomizableTransform):
    """
    Dictionary version of :py:class:`RandHoleMask`: writes a masked copy of every key and the shared hole
    mask, leaving the original images untouched (MaskSup feeds both the clean and the masked image).

    ``d[masked_key] = image * (1 - hole) + fill_value * hole`` and ``d[mask_key] = hole`` ``(1, *spatial)``.
    All keys must share the spatial shape and get the same mask. When the transform is not applied (``prob``)
    the masked copy equals the image and the mask is all zeros, so the keys are always present.

    Args:
        keys: keys of the images to mask.
        masked_key: key (one key) or keys (one per key) of the masked copies.
        mask_key: key of the hole mask; ``None`` does not store it.
        coverage: hole ratio bin, see :py:class:`HoleMaskGenerator`.
        fill_value: value written into the holes.
        prob: probability of masking.
        mask_generator: a configured :py:class:`HoleMaskGenerator` to use instead of ``coverage``.
        draw_batch: masks drawn per call of the generator and kept for the next calls, see
            :py:class:`RandHoleMask`.
        allow_missing_keys: do not raise for absent keys.

    Raises:
        ValueError: when the number of masked keys does not match ``keys``, or an image is not channel-first
            2D / 3D.
    """

    backend = RandHoleMask.backend

    def __init__(
        self,
        keys: KeysCollection = "image",
        masked_key: str | Sequence[str] = "image_masked",
        mask_key: str | None = "hole_mask",
        coverage: str | tuple[float, float] | None = "high",
        fill_value: float = 0.0,
        prob: float = 1.0,
        mask_generator: HoleMaskGenerator | None = None,
        draw_batch: int = 1,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.masked_keys = masked_keys_for(self.keys, masked_key)
        self.mask_key = mask_key
        self.masker = RandHoleMask(
            coverage=coverage, fill_value=fill_value, prob=1.0, mask_generator=mask_generator, draw_batch=draw_batch
        )

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> RandHoleMaskd:
        super().set_random_state(seed, state)
        self.masker.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        self.randomize(None)
        first_key = self.first_key(d)
        if first_key == ():
            return d
        check_channel_first_image(d[first_key], name=f"d[{first_key!r}]")
        image = d[first_key]
        device = image.device if isinstance(image, torch.Tensor) else None
        if self._do_transform:
            self.masker.randomize(image.shape[1:], device=device)
        else:
            self.masker._hole = torch.zeros((1, *image.shape[1:]), dtype=torch.float32, device=device)
        mask = None
        for key, masked_key in self.key_iterator(d, self.masked_keys):
            check_channel_first_image(d[key], name=f"d[{key!r}]")
            d[masked_key] = self.masker(d[key], randomize=False)
            mask = self.masker.last_mask
        if self.mask_key is not None and mask is not None:
            d[self.mask_key] = mask
        return d
