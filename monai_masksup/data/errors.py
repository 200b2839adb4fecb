"""Exceptions raised when a data set folder or one of its files is not what the indexers expect."""

from __future__ import annotations

__all__ = ["DatasetLayoutError", "DataFileError", "source_name"]


class DatasetLayoutError(FileNotFoundError):
    """A data set folder is missing, empty, or not in the layout its publisher ships.

    The message says which layout was expected, where it was looked for, and where the data can be
    downloaded.
    """


class DataFileError(ValueError):
    """One file of a data set is unusable: unpaired, unreadable, truncated, of the wrong size,
    with the wrong number of channels or with unexpected label values. The message names the file.
    """


def source_name(img: object, fallback: str = "<in-memory array>") -> str:
    """The file an image was loaded from, read from MONAI metadata, for error messages.

    Args:
        img: a ``MetaTensor`` (its ``meta["filename_or_obj"]`` is used) or any array.
        fallback: returned when no file name is recorded.

    Returns:
        the file name, or ``fallback``.
    """
    meta = getattr(img, "meta", None)
    if isinstance(meta, dict) and meta.get("filename_or_obj"):
        return str(meta["filename_or_obj"])
    return fallback
