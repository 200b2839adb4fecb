"""Two augmented views of one sample for MaskContrast: a query view and a key view with their mask proposals."""

from __future__ import annotations

import copy
import logging
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms import MapTransform, Randomizable
from monai.transforms.transform import apply_transform
from monai.utils import convert_to_tensor

__all__ = ["MaskContrastViewsd", "KEY_VIEW_PREFIX", "salient_fraction"]

#: the key view of a sample's ``k`` is stored under ``KEY_VIEW_PREFIX + k`` (``"key_image"``, ``"key_label"``)
KEY_VIEW_PREFIX = "key_"


def salient_fraction(mask: NdarrayOrTensor) -> float:
    """The share of a mask proposal's pixels that belong to an object (value ``> 0``)."""
    mask = convert_to_tensor(mask, track_meta=False)
    return float((mask > 0).float().mean()) if mask.numel() else 0.0


class MaskContrastViewsd(Randomizable, MapTransform):
    """
    Make MaskContrast's two views (Van Gansbeke et al., ICCV 2021) of one sample: ``view_transform`` is applied
    twice, independently, to the image and its mask proposal; the first result (query view) replaces ``keys``,
    the second (key view) is stored under ``"key_" + key`` (``key_prefix``).

    The reference only keeps views whose salient fraction is neither (almost) empty nor (almost) everything,
    since the loss needs object and background pixels. Here both views are re-drawn until both fractions of the
    mask proposal (pixels ``> 0``) lie in ``fraction_range`` (open interval, default ``(0.01, 0.99)``), at most
    ``max_tries`` times. **Fallback**: after ``max_tries`` failed draws both views are the un-augmented sample
    (the same image twice, and its proposal), so a sample whose own proposal is degenerate (an empty label) never
    loops; ``MaskContrastLoss`` handles such views (no rows for an empty mask). ``fallbacks`` counts them, and
    each is logged at debug level.

    The randomness is ``view_transform``'s (a MONAI random transform or ``Compose``); :meth:`set_random_state`
    forwards to it, so a seeded dataset reproduces the views.

    Args:
        keys: the image and the mask proposal (and any other key to transform with them).
        mask_key: the key of the mask proposal among ``keys``.
        view_transform: a dictionary transform applied to ``{key: value for key in keys}`` for each view, e.g. a
            ``Compose`` of ``RandSpatialCropd``, ``RandFlipd``, ``RandRotate90d`` over both keys and an intensity
            jitter over the image. Spatial transforms must use nearest interpolation for the mask.
        fraction_range: ``(lo, hi)``: a view is accepted when ``lo < fraction < hi``.
        max_tries: draws of the pair of views before the fallback (at least 1).
        key_prefix: prefix of the key view's keys.
        allow_missing_keys: do not raise if a key is missing.

    Raises:
        ValueError: when ``mask_key`` is not one of ``keys``, ``fraction_range`` is not ``0 <= lo < hi <= 1``, or
            ``max_tries`` is below 1.
        TypeError: when ``view_transform`` is not callable.
    """

    def __init__(
        self,
        keys: KeysCollection,
        mask_key: str,
        view_transform,
        fraction_range: Sequence[float] = (0.01, 0.99),
        max_tries: int = 5,
        key_prefix: str = KEY_VIEW_PREFIX,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if mask_key not in self.keys:
            raise ValueError(f"MaskContrastViewsd: `mask_key` {mask_key!r} must be one of `keys` {self.keys}.")
        if not callable(view_transform):
            raise TypeError(
                f"MaskContrastViewsd: `view_transform` must be callable, got {type(view_transform).__name__}."
            )
        lo, hi = (float(v) for v in fraction_range)
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"MaskContrastViewsd: `fraction_range` must be 0 <= lo < hi <= 1, got {fraction_range}.")
        if int(max_tries) < 1:
            raise ValueError(f"MaskContrastViewsd: `max_tries` must be at least 1, got {max_tries}.")
        self.mask_key = mask_key
        self.view_transform = view_transform
        self.fraction_range = (lo, hi)
        self.max_tries = int(max_tries)
        self.key_prefix = key_prefix
        self.fallbacks = 0

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> MaskContrastViewsd:
        super().set_random_state(seed, state)
        if isinstance(self.view_transform, Randomizable):
            self.view_transform.set_random_state(seed, state)
        return self

    def randomize(self, data=None) -> None:
        """The views' randomness is drawn by ``view_transform`` itself."""

    def _accepted(self, view: Mapping[Hashable, NdarrayOrTensor]) -> bool:
        lo, hi = self.fraction_range
        return lo < salient_fraction(view[self.mask_key]) < hi

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        sample = {key: d[key] for key in self.key_iterator(d)}
        for _ in range(self.max_tries):
            query = apply_transform(self.view_transform, copy.deepcopy(sample))
            key_view = apply_transform(self.view_transform, copy.deepcopy(sample))
            if self._accepted(query) and self._accepted(key_view):
                break
        else:
            self.fallbacks += 1
            logging.getLogger(__name__).debug(
                "MaskContrastViewsd: no pair of views with salient fractions in %s after %d tries; using the "
                "un-augmented sample for both views.", self.fraction_range, self.max_tries
            )
            query, key_view = copy.deepcopy(sample), copy.deepcopy(sample)
        for key in sample:
            d[key] = query[key]
            d[self.key_prefix + str(key)] = key_view[key]
        return d
