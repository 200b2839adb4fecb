"""Refusing colour data set images that arrive with the wrong number of channels."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends

from .errors import DataFileError, source_name

__all__ = ["EnsureRGB", "EnsureRGBd"]


class EnsureRGB(Transform):
    """Check that a channel-first image has three (RGB) channels; refuse grey ones loudly.

    CVC-ClinicDB TIFF frames read by MONAI's default readers come back as one grey plane without
    any warning; a network trained on that would see no colour. This check turns that silent
    failure into an error that names the file, with a hint in the terms of its format (a TIFF read
    by the wrong reader, a TIFF or JPEG/PNG/BMP stored grey). RGBA images lose their alpha channel.

    Args:
        drop_alpha: return the first three channels of a 4-channel image instead of raising.
        grey_to_rgb: repeat a single channel three times instead of raising; only for data sets
            that really are grey.

    Raises:
        DataFileError: naming the file (from the MetaTensor metadata) when the image does not have
            3 channels (or 4 with ``drop_alpha``, or 1 with ``grey_to_rgb``).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, drop_alpha: bool = True, grey_to_rgb: bool = False) -> None:
        self.drop_alpha = drop_alpha
        self.grey_to_rgb = grey_to_rgb

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first image ``(C, *spatial)``.

        Returns:
            the image with 3 channels (the input itself when it already has 3).
        """
        channels = img.shape[0] if img.ndim > 2 else 1
        if img.ndim > 2 and channels == 3:
            return img
        if img.ndim > 2 and channels == 4 and self.drop_alpha:
            return img[:3]
        if img.ndim > 2 and channels == 1 and self.grey_to_rgb:
            if isinstance(img, torch.Tensor):
                return img.repeat(3, *([1] * (img.ndim - 1)))
            return np.repeat(img, 3, axis=0)
        source = source_name(img)
        raise DataFileError(
            f"image '{source}' arrived with {channels} channel(s) (shape {tuple(img.shape)}), expected 3 "
            f"(RGB, channel-first). {_channel_hint(source, channels, getattr(img, 'meta', None))}"
        )


def _channel_hint(source: str, channels: int, meta: Mapping | None) -> str:
    """The likely cause and fix of a wrong channel count, in the terms of the file's format."""
    suffix = Path(source).suffix.lower()
    grey_option = "if the data set really is grey, set grey_to_rgb=True (EnsureRGBd)."
    if suffix in (".tif", ".tiff") and channels == 1:
        if isinstance(meta, Mapping) and meta.get("format") == "TIFF":  # read by TiffFileReader: truly grey
            return f"The TIFF file holds one grey plane: replace it with the colour frame, or {grey_option}"
        return (
            "If it is a CVC-ClinicDB TIFF frame, load it with monai_masksup.data.TiffFileReader: MONAI's "
            "default readers return one grey plane for these files."
        )
    if suffix and channels in (1, 2):
        kind = suffix.lstrip(".").upper()
        return (
            f"The {kind} file is stored as a grey image (a copy saved in greyscale?): replace it with the "
            f"colour original from the data set, or {grey_option}"
        )
    return f"Check the file and the reader; {grey_option}"


class EnsureRGBd(MapTransform):
    """Dictionary wrapper of :class:`EnsureRGB`.

    Args:
        keys: keys of the images to check.
        drop_alpha: return the first three channels of a 4-channel image.
        grey_to_rgb: repeat a single channel three times instead of raising.
        allow_missing_keys: do not raise when a key is absent.
    """

    backend = EnsureRGB.backend

    def __init__(
        self, keys: KeysCollection, drop_alpha: bool = True, grey_to_rgb: bool = False, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.ensure_rgb = EnsureRGB(drop_alpha=drop_alpha, grey_to_rgb=grey_to_rgb)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.ensure_rgb(d[key])
        return d
