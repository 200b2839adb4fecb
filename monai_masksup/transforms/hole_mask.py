"""Array and dictionary transforms that mask an image with random masks of any :py:class:`MaskGenerator`
(MaskSup input masking)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms import MapTransform, Randomizable, RandomizableTransform
from monai.utils import TransformBackends, convert_to_dst_type

from monai_masksup.keys import PluginKeys

from .apply_mask import apply_mask
from .hole_mask_generator import HoleMaskGenerator
from .mask_generator import MaskGenerator, check_mask_generator
from .spatial_size import check_channel_first_image, shared_spatial_size

__all__ = ["RandHoleMask", "RandHoleMaskd", "masked_keys_for"]


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


class RandHoleMask(RandomizableTransform):
    """
    Fill the masked pixels of a random mask in a channel-first image with ``fill_value``; all channels share the
    mask. By default the masks are random irregular holes (lines, discs, elliptic arcs, strokes): the input
    masking of MaskSup (Zunair and Ben Hamza, "Masked Supervised Learning for Semantic Segmentation", BMVC 2022),
    built on the irregular masks of Liu et al. 2018, see :py:class:`HoleMaskGenerator`. Any other
    :py:class:`MaskGenerator` may draw them instead: :py:class:`HoleMaskFolder` (masks from image files) or
    :py:class:`BoxMaskGenerator` (Cutout boxes).

    The mask is drawn in ``randomize`` through the :py:class:`MaskGenerator` call with a CPU
    ``torch.Generator`` seeded from ``self.R``, on the image's device, so ``set_random_state`` reproduces it.
    With ``draw_batch=k`` the generator draws k masks at once (one seed per k masks) and the next k calls use
    them in turn: for :py:class:`HoleMaskGenerator` this is several times cheaper per mask (about 0.14 instead
    of 0.97 ms for raw 224 x 224 masks with k = 16, 0.92 instead of 2.1 ms for "high", on one CPU thread; see
    docs/benchmarks.md), at the cost of keeping up to k masks in memory. The kept masks are dropped when the
    image size or device changes and by ``set_random_state``, so use it where the images share one size (after
    a resize or crop): with a new size at every call it would draw k masks to use one. ``draw_batch=1``
    (default) draws one mask per call. The masks drawn ahead are not part of the random state that a training
    checkpoint saves (:py:class:`~monai_masksup.handlers.random_states.RandomStates` saves ``R``): a run resumed
    from a checkpoint continues exactly as the uninterrupted run only with ``draw_batch=1``.

    Args:
        coverage: hole ratio bin "low" (0.01, 0.1], "high" (0.5, 0.6], a ``(lo, hi)`` pair or ``None`` (raw
            generator output) of the default :py:class:`HoleMaskGenerator`. Ignored when ``mask_generator`` is
            given.
        fill_value: value written into the masked pixels.
        prob: probability of masking; when not applied the image is returned unchanged and the mask is empty.
        return_mask: when True, ``__call__`` returns ``(masked_image, mask)``.
        mask_generator: any :py:class:`MaskGenerator` to use instead of ``HoleMaskGenerator(coverage)``.
        draw_batch: masks drawn per call of the generator (kept for the next calls), at least 1.

    Raises:
        ValueError: for a bad ``coverage`` or ``draw_batch``, or an image that is not ``(C, H, W)`` /
            ``(C, H, W, D)``.
        TypeError: when ``mask_generator`` is not callable.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        coverage: str | tuple[float, float] | None = "high",
        fill_value: float = 0.0,
        prob: float = 1.0,
        return_mask: bool = False,
        mask_generator: MaskGenerator | None = None,
        draw_batch: int = 1,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        if mask_generator is None:
            mask_generator = HoleMaskGenerator(coverage)
        self.mask_generator = check_mask_generator(mask_generator, f"{type(self).__name__}: mask_generator")
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
            masks = self.mask_generator(self.draw_batch, spatial, device=device, generator=generator)
            self._drawn, self._drawn_for = list(masks.unbind(0))[::-1], key
        hole = self._drawn.pop()
        # a mask handed out must not keep the other masks of its draw alive
        return hole if self.draw_batch == 1 else hole.clone()

    def randomize(  # type: ignore[override]
        self, spatial_size: Sequence[int], device: torch.device | str | None = None
    ) -> None:
        """
        Draw whether to mask and, if so, the mask ``(1, *spatial_size)`` on ``device``; when not, the mask is
        all zeros (this is the one place that decides it, for the dictionary transform too).

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
            The mask (float32 ``(1, *spatial)``, 1 = masked, of the type of ``img``) is also kept in
            ``self.last_mask``.

        Raises:
            ValueError: when ``img`` is not channel-first 2D / 3D, or ``randomize=False`` and the last mask
                has another spatial shape.
            RuntimeError: when ``randomize=False`` and no mask was drawn yet.
        """
        check_channel_first_image(img)
        if randomize:
            device = img.device if isinstance(img, torch.Tensor) else None
            self.randomize(img.shape[1:], device=device)
        if self._hole is None:
            raise RuntimeError(f"{type(self).__name__}: call randomize() before __call__(randomize=False).")
        out = apply_mask(img, self._hole, self.fill_value)
        self.last_mask, *_ = convert_to_dst_type(self._hole, dst=img, dtype=torch.float32)
        return (out, self.last_mask) if self.return_mask else out


class RandHoleMaskd(Randomizable, MapTransform):
    """
    Dictionary version of :py:class:`RandHoleMask`: writes a masked copy of every key and the shared mask,
    leaving the original images untouched (MaskSup feeds both the clean and the masked image).

    ``d[masked_key] = image`` with the masked pixels set to ``fill_value`` and ``d[mask_key] = mask``
    ``(1, *spatial)``, 1 = masked. All keys must share the spatial shape and get the same mask. The mask comes
    from ``mask_generator``, any :py:class:`MaskGenerator` (default: ``HoleMaskGenerator(coverage)``; a
    :py:class:`HoleMaskFolder` masks with the files of a mask folder, a :py:class:`BoxMaskGenerator` with
    Cutout boxes). When the transform is not applied (``prob``) the masked copy equals the image and the mask is
    all zeros, so the keys are always present.

    Unlike MONAI's dictionary transforms, the wrapped :py:class:`RandHoleMask` (``self.masker``) draws ``prob``
    too: it owns the "not applied" mask, so that one place decides it.

    Args:
        keys: keys of the images to mask.
        masked_key: key (one key) or keys (one per key) of the masked copies.
        mask_key: key of the mask; ``None`` does not store it.
        coverage: hole ratio bin of the default :py:class:`HoleMaskGenerator`; ignored when ``mask_generator``
            is given.
        fill_value: value written into the masked pixels.
        prob: probability of masking.
        mask_generator: any :py:class:`MaskGenerator` to use instead of ``HoleMaskGenerator(coverage)``.
        draw_batch: masks drawn per call of the generator and kept for the next calls, see
            :py:class:`RandHoleMask`; the kept masks are not checkpointed, so resume is exact with 1 only.
        allow_missing_keys: do not raise for absent keys.

    Raises:
        ValueError: when the number of masked keys does not match ``keys``, or an image is not channel-first
            2D / 3D, or the keys' spatial shapes differ.
        TypeError: when ``mask_generator`` is not callable.
    """

    backend = RandHoleMask.backend

    def __init__(
        self,
        keys: KeysCollection = "image",
        masked_key: str | Sequence[str] = PluginKeys.IMAGE_MASKED,
        mask_key: str | None = PluginKeys.HOLE_MASK,
        coverage: str | tuple[float, float] | None = "high",
        fill_value: float = 0.0,
        prob: float = 1.0,
        mask_generator: MaskGenerator | None = None,
        draw_batch: int = 1,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.masked_keys = masked_keys_for(self.keys, masked_key)
        self.mask_key = mask_key
        self.masker = RandHoleMask(
            coverage=coverage, fill_value=fill_value, prob=prob, mask_generator=mask_generator, draw_batch=draw_batch
        )

    @property
    def prob(self) -> float:
        """Probability of masking (drawn by ``self.masker``)."""
        return self.masker.prob

    @property
    def mask_generator(self) -> MaskGenerator:
        """The :py:class:`MaskGenerator` that draws the masks."""
        return self.masker.mask_generator

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> RandHoleMaskd:
        super().set_random_state(seed, state)
        self.masker.set_random_state(seed, state)
        return self

    def randomize(  # type: ignore[override]
        self, spatial_size: Sequence[int], device: torch.device | str | None = None
    ) -> None:
        """Draw whether to mask and the mask for images of ``spatial_size`` on ``device``, see
        :py:meth:`RandHoleMask.randomize`."""
        self.masker.randomize(spatial_size, device)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        present = list(self.key_iterator(d))
        if not present:
            return d
        image = d[present[0]]
        spatial = shared_spatial_size(d, present, type(self).__name__)
        self.randomize(spatial, device=image.device if isinstance(image, torch.Tensor) else None)
        for key, masked_key in self.key_iterator(d, self.masked_keys):
            d[masked_key] = self.masker(d[key], randomize=False)
        if self.mask_key is not None:
            d[self.mask_key] = self.masker.last_mask
        return d
