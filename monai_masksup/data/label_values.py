"""Refusing labels whose channels or values are not what a data set's masks should hold, or that hold no foreground."""

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
    """Raise when a channel-first label has too many channels, values outside an allowed set, or no foreground.

    Catches the label files that would otherwise train silently on nonsense: a colour-coded RGB
    label where one channel is expected, an instance map (1, 2, 3, ... per object) where a binary
    {0, 255} mask is expected, a mask exported with another scale. The label passes unchanged.

    With ``foreground_threshold`` it also checks the label against the binarisation that follows it
    (:class:`~monai_masksup.data.BinarizeLabel` keeps ``value > threshold``, on the channel mean of a grey
    label stored as RGB): a label with no value above the threshold would become an all-background mask.
    Two cases are told apart. A label that holds values above zero, all at or below the threshold, is
    always refused: the threshold would erase it, as ``threshold=127`` erases the class indices 0/1 that
    MONAI Label and annotation tools save. A label that is zero everywhere is refused unless
    ``allow_empty``: some data sets (e.g. retinal OCT without fluid) have images without foreground, most
    do not. An empty mask saved as JPEG carries compression noise above zero and so counts as erased.

    Args:
        allowed: the values the label may hold (e.g. ``{0, 255}`` or ``{0, 1}``); ``None`` skips the
            value check (e.g. for JPEG masks, whose values are noisy).
        max_channels: the most channels the label may have.
        foreground_threshold: the threshold of the binarisation that follows; ``None`` skips the
            foreground check.
        allow_empty: accept labels that are zero everywhere (only with ``foreground_threshold``).

    Raises:
        DataFileError: naming the file (from the MetaTensor metadata) and the offending channels or
            values; for a label without foreground also the values found and the bundle option to set
            (``label_threshold`` or ``allow_empty_labels``).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        allowed: Collection[float] | None = None,
        max_channels: int = 1,
        foreground_threshold: float | None = None,
        allow_empty: bool = False,
    ) -> None:
        self.allowed = None if allowed is None else sorted(float(v) for v in allowed)
        self.max_channels = max_channels
        self.foreground_threshold = None if foreground_threshold is None else float(foreground_threshold)
        self.allow_empty = allow_empty

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
        if self.foreground_threshold is not None:
            self._check_foreground(img)
        return img

    def _check_foreground(self, img: NdarrayOrTensor) -> None:
        """Raise when binarising ``img`` at ``foreground_threshold`` would leave no foreground."""
        data = convert_to_tensor(img, track_meta=False).float()
        threshold = self.foreground_threshold
        # the same channel reduction as BinarizeLabel, so this check and the binarisation agree
        if float(data.mean(0).max()) > threshold:
            return
        values = torch.unique(data).double()
        if float(values.max()) == 0.0:
            if self.allow_empty:
                return
            raise DataFileError(
                f"label '{source_name(img)}' is empty (every value is 0): nothing to learn from it. If some images "
                "of this data set truly show no foreground, allow such labels with `allow_empty_labels` "
                "(bundles: --allow_empty_labels true); otherwise check the label file."
            )
        shown = ", ".join(f"{v:g}" for v in values[:_SHOWN].tolist())
        more = f" (and {values.numel() - _SHOWN} more)" if values.numel() > _SHOWN else ""
        raise DataFileError(
            f"label '{source_name(img)}' holds values {{{shown}{more}}}, none above the label threshold {threshold:g}: "
            "binarising it (foreground = value > threshold) would leave an empty mask. Set `label_threshold` "
            "below its foreground value (bundles: --label_threshold 0 for labels stored as class indices 0/1, as "
            "MONAI Label and annotation tools save them)."
        )


class CheckLabelValuesd(MapTransform):
    """Dictionary wrapper of :class:`CheckLabelValues`.

    Args:
        keys: keys of the labels to check.
        allowed: the values the label may hold; ``None`` skips the value check.
        max_channels: the most channels the label may have.
        foreground_threshold: the threshold of the binarisation that follows; ``None`` skips the
            foreground check.
        allow_empty: accept labels that are zero everywhere (only with ``foreground_threshold``).
        allow_missing_keys: do not raise when a key is absent.
    """

    backend = CheckLabelValues.backend

    def __init__(
        self,
        keys: KeysCollection = "label",
        allowed: Collection[float] | None = None,
        max_channels: int = 1,
        foreground_threshold: float | None = None,
        allow_empty: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.check = CheckLabelValues(
            allowed=allowed,
            max_channels=max_channels,
            foreground_threshold=foreground_threshold,
            allow_empty=allow_empty,
        )

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.check(d[key])
        return d
