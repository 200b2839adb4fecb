"""Writing a checkpoint so that a kill at any moment leaves either the complete old file or the complete new one."""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from pathlib import Path
from collections.abc import Callable
from typing import Any, BinaryIO

import torch

__all__ = ["write_atomically", "save_atomically", "file_sha256", "remove_stale_temporaries"]

#: temporary files of :func:`save_atomically`: ``.<final name>.<pid>.<random>.tmp`` in the final file's folder
_TEMPORARY = re.compile(r"^\.(?P<final>.+)\.\d+\.[0-9a-f]{8}\.tmp$")


class _HashingWriter:
    """A binary file that also feeds every byte written to a SHA-256, so the digest costs no second read."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()


def _fsync_folder(folder: Path) -> None:
    # the rename itself is only durable once the folder's entry is on disk (POSIX; Windows has no O_DIRECTORY)
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: str | os.PathLike, write: Callable[[Any], None]) -> str:
    """
    Write a file atomically: ``write(file)`` fills a temporary file in the same folder, which is flushed and
    fsynced, then ``os.replace`` d onto ``path``; the folder is fsynced so that the rename is on disk too.

    A process killed at any moment (``kill -9``, a preempted job) leaves ``path`` either as it was or complete;
    at worst a temporary ``.<name>.<pid>.<hex>.tmp`` stays behind (see :func:`remove_stale_temporaries`).
    ignite's ``DiskSaver(atomic=True)`` also renames a temporary file, but does not fsync it before the rename
    (a crash of the machine can then leave an empty file under the final name) and gives it owner-only
    permissions; MONAI's ``CheckpointSaver`` uses it with ``atomic=False``.

    Args:
        path: the final file; its folder is created when missing.
        write: called once with a binary file object that has ``write`` and ``flush``.

    Returns:
        the SHA-256 hex digest of the bytes written, so that a record saved beside the file can name the exact
        file it belongs to.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        # "xb" rather than tempfile.mkstemp: the file gets the user's umask permissions (mkstemp: owner only)
        with open(temporary, "xb") as file:
            writer = _HashingWriter(file)
            write(writer)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return writer.sha256.hexdigest()


def save_atomically(obj: Any, path: str | os.PathLike) -> str:
    """
    ``torch.save`` ``obj`` to ``path`` with :func:`write_atomically`.

    Returns:
        the SHA-256 hex digest of the file written.
    """
    return write_atomically(path, lambda file: torch.save(obj, file))


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 22) -> str:
    """
    Returns:
        the SHA-256 hex digest of the file at ``path`` (read in chunks of ``chunk_size`` bytes).
    """
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def remove_stale_temporaries(folder: str | os.PathLike, final_names: re.Pattern | None = None) -> list[Path]:
    """
    Remove the temporary files that a killed :func:`save_atomically` left in ``folder``.

    Call it only when no other process writes into ``folder`` (under DDP: on rank 0, before training).

    Args:
        folder: the checkpoint folder; a missing folder holds none.
        final_names: only temporaries whose final file name matches this pattern (``re.fullmatch``); all when
            ``None``.

    Returns:
        the removed files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        match = _TEMPORARY.match(path.name)
        if match and (final_names is None or final_names.fullmatch(match.group("final"))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
