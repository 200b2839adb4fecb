"""The warnings libjpeg emits while decoding a JPEG file, which Pillow discards."""

from __future__ import annotations

import ctypes
import os
import re
import sys
import tempfile
import threading
from pathlib import Path

__all__ = ["libjpeg_messages"]

# fd 1 is redirected while a file is decoded: one decode at a time
_LOCK = threading.Lock()

# How libjpeg's messages begin (its jerror.h catalogue: the warnings it recovers from and the fatal errors);
# any other line written to fd 1 during a decode is someone else's output and is handed on to stdout.
_LIBJPEG_LINE = re.compile(
    r"^(Corrupt JPEG data|Premature end of JPEG file|Invalid JPEG file structure|Not a JPEG file"
    r"|Inconsistent progression sequence|Invalid SOS parameters|Application transferred too many scanlines"
    r"|Unknown Adobe color transform|Warning: unknown JFIF|Warning: thumbnail image size|Bogus |Unsupported "
    r"|(Huffman|Quantization|Arithmetic) table|Empty JPEG image|JPEG datastream contains no image"
    r"|Improper call to JPEG library|Wrong JPEG library version|Maximum supported image dimension"
    r"|Sampling factors too large|Invalid component ID|Invalid progressive parameters)"
)


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
    descriptor 1 points to a temporary file, and returns the lines that read as libjpeg's messages.
    Other lines written to file descriptor 1 meanwhile (by other threads, a few milliseconds) are not
    messages of the file: they are written to the real standard output once the decode is done.

    Args:
        path: the JPEG file.

    Returns:
        the message lines (empty for a clean file), or ``None`` when they cannot be captured here (no C
        ``fflush`` found through ``ctypes``, or ITK could not decode the file at all; the caller
        should then decode with another library).
    """
    if _FFLUSH is None:
        return None
    with _LOCK, tempfile.TemporaryFile() as captured:
        sys.stdout.flush()
        _FFLUSH(None)
        saved = os.dup(1)
        failed = False
        try:
            os.dup2(captured.fileno(), 1)
            try:
                _decode_with_itk(path)
            except RuntimeError:  # a fatal libjpeg error (its message is captured too) or an unsupported file
                failed = True
            finally:
                _FFLUSH(None)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        captured.seek(0)
        lines, others = [], []
        for line in captured.read().splitlines(keepends=True):
            text = line.decode(errors="replace").strip()
            if _LIBJPEG_LINE.match(text):
                lines.append(text)
            else:
                others.append(line)
        if others:
            _write_fd1(b"".join(others))
    if failed and not lines:
        return None
    return lines


def _decode_with_itk(path: str | os.PathLike) -> None:
    import itk

    image_type = itk.Image[itk.RGBPixel[itk.UC], 2]
    reader = itk.ImageFileReader[image_type].New(FileName=str(Path(path)), ImageIO=itk.JPEGImageIO.New())
    reader.Update()


def _write_fd1(data: bytes) -> None:
    """Write ``data`` to file descriptor 1 (the real standard output again), whole."""
    while data:
        data = data[os.write(1, data) :]
