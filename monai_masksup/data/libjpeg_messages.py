"""The warnings libjpeg emits while decoding a JPEG file, which Pillow discards."""

from __future__ import annotations

import ctypes
import os
import sys
import tempfile
import threading
from pathlib import Path

__all__ = ["libjpeg_messages"]

# fd 1 is redirected while a file is decoded: one decode at a time
_LOCK = threading.Lock()


def _c_stdio_flush():
    """``fflush(NULL)`` of the C library, or ``None`` where it cannot be found (then nothing is captured)."""
    try:
        return ctypes.CDLL(None).fflush
    except (OSError, AttributeError, TypeError):
        return None


_FFLUSH = _c_stdio_flush()


def libjpeg_messages(path: str | os.PathLike) -> list[str] | None:
    """Decode a JPEG file completely and return the messages libjpeg printed while doing so.

    Damaged compressed data makes libjpeg warn (``Corrupt JPEG data: bad Huffman code``,
    ``premature end of data segment``, ``N extraneous bytes before marker 0xd9``) and carry on with a
    partly wrong image; Pillow installs a silent message handler, so ``Image.load()`` succeeds. ITK's
    ``JPEGImageIO`` (ITK is a dependency of this package and of MONAI's ``ITKReader``) keeps libjpeg's
    messages and prints them to the C ``stdout``; this function decodes with it while file
    descriptor 1 points to a temporary file, and returns what was printed. Anything else written to
    file descriptor 1 by other threads during the decode (a few milliseconds) would be returned too.

    Args:
        path: the JPEG file.

    Returns:
        the message lines (empty for a clean file), or ``None`` when they cannot be captured here (no C
        ``fflush`` found through ``ctypes``, or ITK could not decode the file at all; the caller
        should then decode with another library).
    """
    if _FFLUSH is None:
        return None
    import itk

    image_type = itk.Image[itk.RGBPixel[itk.UC], 2]
    with _LOCK, tempfile.TemporaryFile() as captured:
        sys.stdout.flush()
        _FFLUSH(None)
        saved = os.dup(1)
        failed = False
        try:
            os.dup2(captured.fileno(), 1)
            try:
                reader = itk.ImageFileReader[image_type].New(FileName=str(Path(path)), ImageIO=itk.JPEGImageIO.New())
                reader.Update()
            except RuntimeError:  # a fatal libjpeg error (its message is captured too) or an unsupported file
                failed = True
            finally:
                _FFLUSH(None)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        captured.seek(0)
        lines = [line.strip() for line in captured.read().decode(errors="replace").splitlines() if line.strip()]
    if failed and not lines:
        return None
    return lines
