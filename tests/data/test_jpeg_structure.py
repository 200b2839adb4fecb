from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from monai_masksup.data import DataFileError
from monai_masksup.data.jpeg_structure import check_jpeg_structure

from .image_files import jpeg_scan_start, overwrite, write_smooth_rgb


def _damaged_jpeg(tmp_path, new: bytes, fraction: float = 0.4):
    """A 96x96 JPEG whose entropy-coded data is overwritten at ``fraction`` of its length; returns (path, offset)."""
    path = tmp_path / "frame.jpg"
    write_smooth_rgb(path)
    data = path.read_bytes()
    start, end = jpeg_scan_start(data), data.rindex(b"\xff\xd9")
    offset = start + int((end - start) * fraction)
    overwrite(path, offset, new)
    return path, offset


@pytest.mark.parametrize("options", [{}, {"progressive": True}, {"restart_marker_blocks": 4}, {"quality": 100}])
def test_intact_jpegs_pass(tmp_path, options):
    path = tmp_path / "a.jpg"
    write_smooth_rgb(path, **options)
    check_jpeg_structure(path)


def test_grey_jpeg_passes(tmp_path):
    path = tmp_path / "mask.jpg"
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8), (64, 1))).save(path)
    check_jpeg_structure(path)


def test_pillow_loads_a_jpeg_with_a_stray_marker_without_error_and_grey(tmp_path):
    # the defect this module exists for: no exception, the image below the damage flat grey (128)
    path, _ = _damaged_jpeg(tmp_path, b"\xff\xe4" + bytes(6))
    with Image.open(path) as im:
        pixels = np.asarray(im.convert("RGB"))
    assert (pixels[-8:] == 128).all()


@pytest.mark.parametrize("marker", [b"\xff\xe4", b"\xff\x4a", b"\xff\xd8", b"\xff\xc0", b"\xff\xd9"])
def test_stray_marker_in_compressed_data_names_file_byte_and_marker(tmp_path, marker):
    path, offset = _damaged_jpeg(tmp_path, marker + bytes(6))
    hex_marker = f"0xFF{marker[1]:02X}"
    with pytest.raises(DataFileError, match=rf"frame\.jpg' is damaged at byte {offset}: marker {hex_marker} inside"):
        check_jpeg_structure(path)


def test_restart_markers_out_of_order_are_refused(tmp_path):
    path = tmp_path / "frame.jpg"
    write_smooth_rgb(path, restart_marker_blocks=4)
    data = path.read_bytes()
    second_rst = data.index(b"\xff\xd1")
    overwrite(path, second_rst, b"\xff\xd5")
    with pytest.raises(DataFileError, match=rf"frame\.jpg' is damaged at byte {second_rst}: restart marker RST5"):
        check_jpeg_structure(path)


def test_missing_end_of_image_marker_is_refused(tmp_path):
    path = tmp_path / "frame.jpg"
    write_smooth_rgb(path)
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(DataFileError, match=r"frame\.jpg' is damaged"):
        check_jpeg_structure(path)
