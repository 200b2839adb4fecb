"""Cheap checks of a datalist's files: readable headers, complete files, equal image/label sizes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .errors import DataFileError
from .jpeg_structure import check_jpeg_structure
from .libjpeg_messages import libjpeg_messages

__all__ = ["TIFF_SUFFIXES", "image_size", "check_complete", "validate_datalist"]

TIFF_SUFFIXES: tuple[str, ...] = (".tif", ".tiff")
_REPLACE = "Replace it with a complete copy (download the data set again)."
# the tail searched for an end marker: large enough for trailing padding some encoders add
_TAIL_BYTES = 4096


def _tiff_size(path: Path) -> tuple[int, int]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            axes, shape = page.axes, page.shape
    except Exception as e:  # tifffile raises several exception types for damaged files
        raise DataFileError(f"cannot read TIFF header of '{path}': {e}") from e
    return shape[axes.index("Y")], shape[axes.index("X")]


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """Spatial size ``(height, width)`` of a 2D image read from its header only.

    Args:
        path: a PNG, JPEG, BMP or TIFF file.

    Returns:
        ``(height, width)`` in pixels.

    Raises:
        DataFileError: when the file is missing or its header cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"file '{path}' does not exist.")
    if path.suffix.lower() in TIFF_SUFFIXES:
        return _tiff_size(path)
    try:
        with Image.open(path) as im:
            width, height = im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataFileError(f"cannot read image header of '{path}': {e}") from e
    return height, width


def _tail(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - _TAIL_BYTES))
        return f.read()


def check_complete(path: str | os.PathLike, decode: bool = False) -> None:
    """Raise if an image file is truncated or its compressed data damaged, without decoding it unless asked.

    JPEG files must hold their end-of-image marker and an intact marker structure (no stray marker
    inside the compressed data: :func:`check_jpeg_structure`), PNG files their ``IEND`` chunk and a
    correct CRC in every chunk (``PIL.Image.verify``), uncompressed BMP files all their pixel rows and
    TIFF files every strip or tile their pages point to. A truncated file would otherwise fail (or,
    with ``ImageFile.LOAD_TRUNCATED_IMAGES``, load grey) deep inside a data loader worker; a damaged
    JPEG loads without any error, partly grey. These checks read each file once (about 0.1 ms for a
    40 kB Kvasir-SEG JPEG).

    With ``decode``, the whole image is decoded too; JPEG files with ITK's libjpeg reader, whose
    warnings (:func:`libjpeg_messages`) become errors: this also finds damage that forms no marker
    (Huffman codes gone wrong), which libjpeg notices in most but not all cases. It costs about one
    decode per file (about 7 ms for a Kvasir-SEG JPEG on a shared 2-core machine, Pillow's ``load``
    4 ms) and, once per process, the import of ITK (about 6 s).

    Args:
        path: image file.
        decode: also decode the whole image (slower, finds more damage).

    Raises:
        DataFileError: naming the file, when it is truncated, damaged or cannot be decoded.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    size = path.stat().st_size
    if suffix in (".jpg", ".jpeg") and b"\xff\xd9" not in _tail(path):
        raise DataFileError(f"JPEG file '{path}' is truncated: its end-of-image marker is missing. {_REPLACE}")
    if suffix in (".jpg", ".jpeg"):
        check_jpeg_structure(path)
    if suffix == ".png" and b"IEND" not in _tail(path):
        raise DataFileError(f"PNG file '{path}' is truncated: its IEND chunk is missing. {_REPLACE}")
    if suffix == ".png":
        _verify_png(path)
    if suffix == ".bmp":
        try:
            with Image.open(path) as im:
                tile = im.tile[0] if im.tile else None
                rows = im.size[1]
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise DataFileError(f"cannot read BMP header of '{path}': {e}") from e
        # the raw codec's args are (rawmode, stride, orientation): the pixel block is stride * rows bytes
        if tile is not None and tile[0] == "raw" and len(tile[3]) >= 2 and isinstance(tile[3][1], int):
            needed = tile[2] + tile[3][1] * rows
            if size < needed:
                raise DataFileError(
                    f"BMP file '{path}' is truncated: {size} bytes, its header needs {needed}. {_REPLACE}"
                )
    if suffix in TIFF_SUFFIXES:
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                for page in tif.pages:
                    ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts)]
                    if ends and max(ends) > size:
                        raise DataFileError(
                            f"TIFF file '{path}' is truncated: {size} bytes, its page data ends at {max(ends)}. "
                            + _REPLACE
                        )
        except DataFileError:
            raise
        except Exception as e:
            raise DataFileError(f"cannot read TIFF file '{path}': {e}") from e
    if decode:
        _decode(path)


def _verify_png(path: Path) -> None:
    # Pillow's verify() checks the CRC of every chunk, the image data's included, without inflating it
    try:
        with Image.open(path) as im:
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataFileError(
            f"PNG file '{path}' is damaged: {e}. Replace it with an intact copy (download the data set again)."
        ) from e


def _decode(path: Path) -> None:
    if path.suffix.lower() in (".jpg", ".jpeg"):
        messages = libjpeg_messages(path)
        if messages:
            raise DataFileError(
                f"JPEG file '{path}' is damaged: decoding it, libjpeg reports '{'; '.join(messages)}' (Pillow "
                "ignores this and returns a partly wrong image). Replace it with an intact copy (download the data "
                "set again)."
            )
        if messages is not None:
            return
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            tifffile.imread(path)
        else:
            with Image.open(path) as im:
                im.load()
    except Exception as e:
        raise DataFileError(f"cannot decode image '{path}': {e}") from e


def validate_datalist(
    datalist: Sequence[dict],
    check_readable: bool = True,
    keys: Sequence[str] = ("image", "label"),
    decode: bool = False,
) -> Sequence[dict]:
    """Check every item of a 2D segmentation datalist before training starts.

    Each file must exist and have a readable header; the files of one item must share their
    ``(height, width)``.

    Args:
        datalist: MONAI datalist, e.g. from :func:`index_kvasir_seg`.
        check_readable: also check that no file is truncated or damaged without decoding it (end markers,
            sizes, JPEG marker structure, PNG chunk CRCs: :func:`check_complete`).
        keys: the item keys holding file paths; keys absent from an item are skipped.
        decode: also decode every file completely (one decode per file; JPEG decoder warnings become errors).

    Returns:
        ``datalist`` unchanged, so the call can be chained.

    Raises:
        DataFileError: naming the first bad file and the problem.
    """
    for item in datalist:
        sizes: dict[str, tuple[int, int]] = {}
        for key in keys:
            if key not in item:
                continue
            sizes[key] = image_size(item[key])
            if check_readable or decode:
                check_complete(item[key], decode=decode)
        if len(set(sizes.values())) > 1:
            detail = ", ".join(f"{key} '{item[key]}' is {h}x{w}" for key, (h, w) in sizes.items())
            raise DataFileError(f"image/label size mismatch (height x width): {detail}.")
    return datalist
