"""Finding the image files of a data set folder, with errors that say which layout was expected."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from .errors import DatasetLayoutError

__all__ = ["IMAGE_SUFFIXES", "natural_key", "require_dir", "list_image_files"]

#: file extensions (lower case, with the dot) that the indexers treat as 2D images.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def natural_key(name: str | os.PathLike) -> tuple:
    """Sort key that orders ``train_2`` before ``train_10`` (digits compared as numbers).

    Args:
        name: a file name or path; only its final component is used.

    Returns:
        a tuple usable as ``sorted(..., key=natural_key)``.
    """
    base = Path(name).name
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", base))


def require_dir(folder: str | os.PathLike, dataset: str, layout: str, url: str) -> Path:
    """Return ``folder`` as a ``Path`` or raise a :class:`DatasetLayoutError` explaining what was expected.

    Args:
        folder: the folder that must exist.
        dataset: human-readable data set name, used in the message.
        layout: description of the expected layout, used in the message.
        url: where the data set can be downloaded, used in the message.

    Raises:
        DatasetLayoutError: when ``folder`` is not an existing directory.
    """
    path = Path(folder)
    if not path.is_dir():
        raise DatasetLayoutError(
            f"{dataset}: folder '{path}' does not exist. Expected layout: {layout}. Download the data from {url}"
        )
    return path


def list_image_files(
    folder: str | os.PathLike,
    dataset: str,
    layout: str,
    url: str,
    suffixes: Iterable[str] = IMAGE_SUFFIXES,
    pattern: str | None = None,
) -> list[Path]:
    """List the image files directly inside ``folder`` in natural name order.

    Args:
        folder: the folder to list (not recursive).
        dataset: human-readable data set name, used in error messages.
        layout: description of the expected layout, used in error messages.
        url: where the data set can be downloaded, used in error messages.
        suffixes: accepted extensions, compared case-insensitively.
        pattern: optional regular expression the file stem must fully match.

    Returns:
        the matching files, sorted with :func:`natural_key`.

    Raises:
        DatasetLayoutError: when ``folder`` is missing or holds no matching file.
    """
    path = require_dir(folder, dataset, layout, url)
    allowed = {s.lower() for s in suffixes}
    regex = re.compile(pattern) if pattern is not None else None
    files = [
        f
        for f in path.iterdir()
        if f.is_file()
        and f.suffix.lower() in allowed
        and not f.name.startswith(".")
        and (regex is None or regex.fullmatch(f.stem))
    ]
    if not files:
        what = f"files matching '{pattern}' with" if pattern else "files with"
        raise DatasetLayoutError(
            f"{dataset}: no image {what} extension {sorted(allowed)} in '{path}'. "
            f"Expected layout: {layout}. Download the data from {url}"
        )
    return sorted(files, key=natural_key)
