"""The marker structure of a JPEG file, read without decoding: where damaged compressed data shows first."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import DataFileError

__all__ = ["check_jpeg_structure"]

_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_RST = range(0xD0, 0xD8)
# markers that carry no length field: SOI, EOI, RST0-7 and TEM
_STANDALONE = {_SOI, _EOI, 0x01, *_RST}
# segments allowed between two scans and before the first one (tables, restart interval, DNL, comments, APPn)
_TABLES = {0xC4, 0xCC, 0xDB, 0xDC, 0xDD, 0xFE, *range(0xE0, 0xF0)}
# start-of-frame markers (0xC4, 0xC8 and 0xCC, which share the range, are tables / reserved)
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_GREY = "(decoders stop there and fill the rest of the image with grey)"
_FIX = "Replace it with an intact copy (download the data set again)."


def _damaged(path: Path, offset: int, problem: str) -> DataFileError:
    return DataFileError(f"JPEG file '{path}' is damaged at byte {offset}: {problem}. {_FIX}")


def _scan_end(data: bytes, start: int, path: Path) -> int:
    """Offset of the marker that ends the entropy-coded data starting at ``start``.

    Inside entropy-coded data a 0xFF byte is followed only by a stuffed 0x00, a restart marker (in
    the cyclic order RST0..RST7) or more 0xFF fill bytes before the marker that ends the scan.
    """
    expected_rst = 0
    pos = data.find(b"\xff", start)
    while pos != -1 and pos + 1 < len(data):
        nxt = data[pos + 1]
        if nxt == 0x00:
            pos = data.find(b"\xff", pos + 2)
        elif nxt == 0xFF:
            pos += 1
        elif nxt in _RST:
            if nxt - 0xD0 != expected_rst:
                raise _damaged(path, pos, f"restart marker RST{nxt - 0xD0} where RST{expected_rst} belongs")
            expected_rst = (expected_rst + 1) % 8
            pos = data.find(b"\xff", pos + 2)
        else:
            return pos
    raise _damaged(path, len(data), "the compressed image data runs to the end of the file without an end marker")


def check_jpeg_structure(path: str | os.PathLike, data: bytes | None = None) -> None:
    """Raise if the marker structure of a JPEG file is broken, as damaged compressed data leaves it.

    A byte overwritten in the entropy-coded data often forms a marker (0xFF and a non-zero byte).
    libjpeg then stops decoding the scan, fills the rest of the image with grey and only emits a
    warning, which Pillow discards (its ``JpegDecode.c`` installs a silent message handler), so
    ``Image.load()`` succeeds on such a file. This walk finds the stray marker by reading the file
    once, without decoding: the segments before the first scan, every scan's stuffed bytes and
    restart markers, the segments between scans, and the end-of-image marker after the last scan
    (which must be the file's last one: a JPEG with another JPEG appended is refused too).
    Damage that forms no marker is not seen here (see :func:`check_complete` with ``decode=True``).

    Args:
        path: the JPEG file (named in the error).
        data: its bytes, if already read.

    Raises:
        DataFileError: naming the file, the byte offset and the problem.
    """
    path = Path(path)
    data = path.read_bytes() if data is None else data
    scan_ends: list[int] = []
    try:
        _walk_segments(data, path, scan_ends)
    except DataFileError as e:
        if not scan_ends:
            raise
        # a scan that ended on a marker other than EOI, then broken segments: that marker was a damaged byte
        raise _damaged(
            path,
            scan_ends[-1],
            f"marker 0xFF{data[scan_ends[-1] + 1]:02X} inside the compressed image data {_GREY}",
        ) from e


def _walk_segments(data: bytes, path: Path, scan_ends: list[int]) -> None:
    """Walk the segments from SOI to EOI, appending to ``scan_ends`` where each scan ends on a marker."""
    if data[:2] != b"\xff\xd8":
        raise _damaged(path, 0, "no start-of-image marker")
    pos, seen_frame = 2, False
    while True:
        if pos + 1 >= len(data) or data[pos] != 0xFF:
            raise _damaged(path, pos, "expected a marker")
        while pos + 1 < len(data) and data[pos + 1] == 0xFF:  # fill bytes before a marker
            pos += 1
        marker = data[pos + 1]
        if marker == _EOI:
            if not seen_frame:
                raise _damaged(path, pos, "end-of-image marker before any image data")
            if data.find(b"\xff\xd9", pos + 2) != -1:
                # a second EOI later on: the first one was a damaged byte, decoders stop at it (grey below)
                raise _damaged(path, pos, "marker 0xFFD9 inside the compressed image data " + _GREY)
            return
        if marker in _STANDALONE or not (marker in _TABLES or marker in _SOF or marker == _SOS):
            raise _damaged(path, pos, f"marker 0xFF{marker:02X} where a segment belongs")
        if marker in _SOF:
            if seen_frame:
                raise _damaged(path, pos, f"a second start-of-frame marker 0xFF{marker:02X}")
            seen_frame = True
        if marker == _SOS and not seen_frame:
            raise _damaged(path, pos, "image data before the start-of-frame segment")
        if pos + 4 > len(data):
            raise _damaged(path, pos, "a segment cut short")
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2 or pos + 2 + length > len(data):
            raise _damaged(path, pos, f"segment 0xFF{marker:02X} of impossible length {length}")
        pos += 2 + length
        if marker == _SOS:
            pos = _scan_end(data, pos, path)
            if data[pos + 1] != _EOI:
                scan_ends.append(pos)
