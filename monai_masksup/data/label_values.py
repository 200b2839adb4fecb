"""Refusing labels whose channels or values are not what a data set's masks should hold."""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_tensor

from .errors import DataFileError, source_name

__all__ = ["CheckLabelValues", "CheckLabelValuesd"]

# how many offending values an error message lists
_SHOWN = 8


class CheckLabelValues(Transform):
    """Raise when a channel-first label has too many channels or values outside an allowed set.

    Catches the label files that would otherwise train silently on nonsense: a colour-coded RGB
    label where one channel is expected, an instance map (1, 2, 3, ... per object) where a binary
    {0, 255} mask is expected, a mask exported with another scale. The label passes unchanged.

    Args:
        allowed: the values the label may hold (e.g. ``{0, 255}`` or ``{0, 1}``); ``None`` skips the
            value check (e.g. for JPEG masks, whose values are noisy).
        max_channels: the most channels the label may have.

    Raises:
        DataFileError: naming the file (from the MetaTensor metadata) and the offending channels or
            values.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, allowed: Collection[float] | None = None, max_channels: int = 1) -> None:
        self.allowed = None if allowed is None else sorted(float(v) for v in allowed)
        self.max_channels = max_channels

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first label ``(C, *spatial)``.

        Returns:
            ``img`` unchanged.
        """
        if img.ndim < 2:
            raise DataFileError(f"label '{source_name(img)}' has shape {tuple(img.shape)}; expected (C, *spatial).")
        if img.shape[0] > self.max_channels:
            raise DataFileError(
                f"label '{source_name(img)}' has {img.shape[0]} channels (shape {tuple(img.shape)}), at most "
                f"{self.max_channels} expected: a colour label, or a label that is not channel-first."
            )
        if self.allowed is not None:
            values = torch.unique(convert_to_tensor(img, track_meta=False)).double()
            allowed = torch.as_tensor(self.allowed, dtype=values.dtype, device=values.device)
            bad = values[~torch.isin(values, allowed)]
            if bad.numel() > 0:
                shown = ", ".join(f"{v:g}" for v in bad[:_SHOWN].tolist())
                more = f" (and {bad.numel() - _SHOWN} more)" if bad.numel() > _SHOWN else ""
                raise DataFileError(
                    f"label '{source_name(img)}' holds values {shown}{more} outside the allowed "
                    f"{{{', '.join(f'{v:g}' for v in self.allowed)}}}: an instance map or a differently scaled mask?"
                )
        return img


class CheckLabelValuesd(MapTransform):
    """Dictionary wrapper of :class:`CheckLabelValues`.

    Args:
        keys: keys of the labels to check.
        allowed: the values the label may hold; ``None`` skips the value check.
        max_channels: the most channels the label may have.
        allow_missing_keys: do not raise when a key is absent.
    """

    backend = CheckLabelValues.backend

    def __init__(
        self,
        keys: KeysCollection = "label",
        allowed: Collection[float] | None = None,
        max_channels: int = 1,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.check = CheckLabelValues(allowed=allowed, max_channels=max_channels)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.check(d[key])
        return d
