"""Turning stored label images (JPEG-noisy masks, 0/255 masks, instance maps) into {0, 1} masks."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from .errors import DataFileError, source_name

__all__ = ["BinarizeLabel", "BinarizeLabeld"]


class BinarizeLabel(Transform):
    """Map a channel-first label image to one foreground channel: ``1`` where ``value > threshold``.

    One transform covers the data sets' conventions: Kvasir-SEG JPEG masks are noisy grey levels
    (``threshold=127``), CVC-ClinicDB masks carry a faint halo (``>= 128``, i.e. ``threshold=127`` for
    8-bit data), GLaS annotations are instance maps with one integer per gland (``threshold=0``).

    A label stored as RGB (Kvasir-SEG masks are grey JPEGs with three equal channels) is accepted
    when its channels agree within ``grey_tolerance``; their mean is thresholded. A colour-coded
    label (channels that differ) is refused rather than silently averaged.

    Args:
        threshold: foreground is ``value > threshold``.
        grey_tolerance: largest per-pixel spread between channels still treated as grey.
        dtype: output dtype.

    Raises:
        DataFileError: naming the file (from the MetaTensor metadata) when a multi-channel label is
            not grey.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, threshold: float = 127.0, grey_tolerance: float = 32.0, dtype: torch.dtype = torch.float32):
        self.threshold = threshold
        self.grey_tolerance = grey_tolerance
        self.dtype = dtype

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first label ``(C, *spatial)``.

        Returns:
            ``(1, *spatial)`` in {0, 1}, of the input's type (a MetaTensor keeps its metadata).
        """
        data = convert_to_tensor(img, track_meta=False).float()
        if data.ndim < 2:
            raise DataFileError(f"label '{source_name(img)}' has shape {tuple(data.shape)}; expected (C, *spatial).")
        if data.shape[0] > 1:
            spread = float((data.amax(0) - data.amin(0)).max())
            if spread > self.grey_tolerance:
                raise DataFileError(
                    f"label '{source_name(img)}' has {data.shape[0]} channels that differ by up to {spread:g} "
                    f"(> grey_tolerance {self.grey_tolerance:g}): a colour label cannot be binarised as one "
                    "foreground channel. Is the label channel-first (EnsureChannelFirstd)?"
                )
            data = data.mean(0, keepdim=True)
        out = (data > self.threshold).to(self.dtype)
        return convert_to_dst_type(out, dst=img, dtype=self.dtype)[0]


class BinarizeLabeld(MapTransform):
    """Dictionary wrapper of :class:`BinarizeLabel`.

    Args:
        keys: keys of the labels to binarise.
        threshold: foreground is ``value > threshold``.
        grey_tolerance: largest per-pixel spread between channels still treated as grey.
        dtype: output dtype.
        allow_missing_keys: do not raise when a key is absent.
    """

    backend = BinarizeLabel.backend

    def __init__(
        self,
        keys: KeysCollection,
        threshold: float = 127.0,
        grey_tolerance: float = 32.0,
        dtype: torch.dtype = torch.float32,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.binarize = BinarizeLabel(threshold=threshold, grey_tolerance=grey_tolerance, dtype=dtype)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.binarize(d[key])
        return d
