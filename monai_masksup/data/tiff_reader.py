"""A MONAI image reader for 2D TIFF frames that keeps every colour sample."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from monai.data import ImageReader
from monai.data.utils import is_supported_format
from monai.utils import MetaKeys, ensure_tuple

from .errors import DataFileError

__all__ = ["TiffFileReader"]


class TiffFileReader(ImageReader):
    """Read 2D TIFF images with ``tifffile``, returning colour frames whole.

    CVC-ClinicDB (Bernal et al., CMIG 2015) stores its RGB frames with three samples per pixel but
    tags them ``PhotometricInterpretation=BlackIsZero``: PIL refuses them and MONAI's ITK / PIL /
    NumPy readers silently return one grey plane. ``tifffile`` reads the samples as stored.

    The output follows :class:`monai.data.PILReader` with ``reverse_indexing=True``: spatial axes
    first, ``(W, H)`` or ``(W, H, C)``, so a frame read here equals the same pixels saved as PNG and
    read by ``PILReader``; ``original_channel_dim`` is ``-1`` for colour and ``nan`` for grey images,
    so ``EnsureChannelFirst`` works as for PNG files. Multi-page TIFF files are read from their
    first page only.

    Args:
        reverse_indexing: swap the first two axes, ``(H, W, C)`` -> ``(W, H, C)``, like ``PILReader``.
            Set ``False`` to keep tifffile's row-major ``(H, W, C)``.
    """

    def __init__(self, reverse_indexing: bool = True) -> None:
        super().__init__()
        self.reverse_indexing = reverse_indexing

    def verify_suffix(self, filename: Sequence[str | os.PathLike] | str | os.PathLike) -> bool:
        """Whether every file name ends in ``.tif`` or ``.tiff``.

        Args:
            filename: file name or list of file names.
        """
        return is_supported_format(filename, ["tif", "tiff"])

    def read(self, data: Sequence[str | os.PathLike] | str | os.PathLike, **kwargs) -> list[dict] | dict:
        """Read the first page of each file.

        Args:
            data: file name or list of file names (stacked as channels by :meth:`get_data`).
            kwargs: unused, accepted for :class:`monai.data.ImageReader` compatibility.

        Returns:
            one record ``{"array": (H, W[, C]) ndarray, "meta": dict}`` per file (a list for several).

        Raises:
            DataFileError: naming the file, when it cannot be read or its axes are not a 2D image.
        """
        import tifffile

        records = []
        names = ensure_tuple(data)
        for name in names:
            try:
                with tifffile.TiffFile(name) as tif:
                    page = tif.pages[0]
                    axes = page.axes
                    array = page.asarray()
                    photometric = int(page.photometric)
            except Exception as e:  # tifffile raises several exception types for damaged files
                raise DataFileError(f"cannot read TIFF file '{name}': {e}") from e
            # drop singleton axes other than the image's own (e.g. a page or time axis of length 1)
            drop = tuple(i for i, (a, n) in enumerate(zip(axes, array.shape)) if n == 1 and a not in "YXS")
            array, axes = np.squeeze(array, axis=drop), "".join(a for i, a in enumerate(axes) if i not in drop)
            if axes == "SYX":  # planar storage: move the samples last, as for contiguous storage
                array, axes = np.moveaxis(array, 0, -1), "YXS"
            if axes not in ("YX", "YXS"):
                raise DataFileError(
                    f"TIFF file '{name}' has axes '{axes}' {array.shape}; expected a 2D image (YX or YXS)."
                )
            records.append({"array": array, "meta": {"format": "TIFF", "photometric": photometric}})
        return records if len(names) > 1 else records[0]

    def get_data(self, img: list[dict] | dict) -> tuple[np.ndarray, dict]:
        """Return the array (spatial first, channels last) and its metadata.

        Args:
            img: the record(s) returned by :meth:`read`; several become channels (last axis for colour,
                a new first axis for grey images).

        Returns:
            ``(array, meta)`` with ``spatial_shape`` ``(W, H)`` (or ``(H, W)`` without reverse indexing)
            and ``original_channel_dim``.
        """
        records = img if isinstance(img, list) else [img]
        arrays = [np.moveaxis(r["array"], 0, 1) if self.reverse_indexing else r["array"] for r in records]
        if len({a.shape for a in arrays}) > 1:
            shapes = [a.shape for a in arrays]
            raise DataFileError(f"cannot stack TIFF images of different shapes {shapes} as channels.")
        meta = dict(records[0]["meta"])
        meta[MetaKeys.SPATIAL_SHAPE] = np.asarray(arrays[0].shape[:2])
        colour = arrays[0].ndim == 3
        if len(arrays) == 1:
            meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = -1 if colour else float("nan")
            return arrays[0], meta
        # several files become the channels of one image, as MONAI's own readers do
        meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = -1 if colour else 0
        return (np.concatenate(arrays, axis=-1) if colour else np.stack(arrays, axis=0)), meta
