"""The interval checkpoints ``<prefix><N>.pt`` of a checkpoint folder, one definition for every handler."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["interval_checkpoints"]


def interval_checkpoints(ckpt_dir: str | os.PathLike, prefix: str = "checkpoint_epoch=") -> list[tuple[int, Path]]:
    """
    The interval checkpoints ``<prefix><N>.pt`` of ``ckpt_dir``, newest (highest ``N``) first.

    Only whole names match (``my_backup_checkpoint_epoch=3.pt`` is not one): the overwrite guard removes
    what this returns, and the resume logic loads it.

    Args:
        ckpt_dir: the checkpoint folder; a missing folder holds none.
        prefix: file-name part before the epoch number.

    Returns:
        ``[(N, path), ...]`` sorted by descending ``N``.
    """
    folder = Path(ckpt_dir)
    if not folder.is_dir():
        return []
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.pt")
    found = [(int(m.group(1)), path) for path in folder.iterdir() if (m := pattern.fullmatch(path.name))]
    return sorted(found, reverse=True)
