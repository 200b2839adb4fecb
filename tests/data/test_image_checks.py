from __future__ import annotations

import numpy as np
import pytest
import tifffile

from monai_masksup.data import DataFileError, check_complete, image_size, validate_datalist

from .image_files import (
    jpeg_scan_start,
    overwrite,
    truncate,
    write_grey,
    write_pair,
    write_rgb,
    write_smooth_rgb,
    write_zeroed_jpeg,
)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp"])
def test_image_size_is_height_width_from_the_header(tmp_path, suffix):
    write_rgb(tmp_path / f"a{suffix}", height=7, width=11)
    assert image_size(tmp_path / f"a{suffix}") == (7, 11)


def test_tiff_size_of_a_colour_frame(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((7, 11, 3), np.uint8), photometric="rgb")
    assert image_size(tmp_path / "a.tif") == (7, 11)


def test_valid_pairs_pass(tmp_path):
    write_pair(tmp_path / "1.jpg", tmp_path / "1_mask.png")
    datalist = [{"image": str(tmp_path / "1.jpg"), "label": str(tmp_path / "1_mask.png")}]
    assert validate_datalist(datalist, decode=True) is datalist


def test_size_mismatch_names_both_files(tmp_path):
    write_rgb(tmp_path / "1.png", height=12, width=16)
    write_grey(tmp_path / "1_mask.png", np.zeros((12, 15), np.uint8))
    datalist = [{"image": str(tmp_path / "1.png"), "label": str(tmp_path / "1_mask.png")}]
    with pytest.raises(DataFileError, match=r"size mismatch.*1\.png' is 12x16.*1_mask\.png' is 12x15"):
        validate_datalist(datalist)


@pytest.mark.parametrize("suffix", [".jpg", ".bmp", ".png"])
def test_truncated_file_is_named(tmp_path, suffix):
    path = tmp_path / f"frame{suffix}"
    write_rgb(path, height=40, width=40)
    truncate(path)
    with pytest.raises(DataFileError, match=rf"frame\{suffix}.*truncated"):
        check_complete(path)


def test_truncated_tiff_is_named(tmp_path):
    path = tmp_path / "frame.tif"
    tifffile.imwrite(path, np.ones((40, 40, 3), np.uint8), photometric="rgb")
    truncate(path, keep_fraction=0.5)
    with pytest.raises(DataFileError, match=r"frame\.tif"):
        validate_datalist([{"image": str(path)}])


def test_non_image_file_is_named(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    with pytest.raises(DataFileError, match=r"notes\.png"):
        image_size(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataFileError, match=r"gone\.jpg' does not exist"):
        validate_datalist([{"image": str(tmp_path / "gone.jpg"), "label": str(tmp_path / "gone.png")}])


def test_jpeg_damaged_mid_stream_is_named_by_the_default_check(tmp_path):
    # end marker intact, a marker-forming byte pair written into the compressed data (as in issue #12)
    path = tmp_path / "images" / "polyp.jpg"
    write_smooth_rgb(path)
    offset = jpeg_scan_start(path.read_bytes()) + 100
    overwrite(path, offset, b"\xff\xe4\x00\x00")
    with pytest.raises(DataFileError, match=rf"polyp\.jpg' is damaged at byte {offset}: marker 0xFFE4"):
        validate_datalist([{"image": str(path)}])


def test_png_damaged_in_its_image_data_is_named(tmp_path):
    path = tmp_path / "mask.png"
    write_smooth_rgb(path)
    data = path.read_bytes()
    idat = data.index(b"IDAT")
    overwrite(path, idat + 40, bytes([data[idat + 40] ^ 0x01]))  # one flipped bit, length unchanged
    with pytest.raises(DataFileError, match=r"PNG file '.*mask\.png' is damaged: .*IDAT"):
        check_complete(path)


def test_png_damage_also_fails_decoding_with_the_file_named(tmp_path):
    path = tmp_path / "mask.png"
    write_smooth_rgb(path)
    data = path.read_bytes()
    idat = data.index(b"IDAT")
    overwrite(path, idat + 40, bytes(16))
    with pytest.raises(DataFileError, match=r"mask\.png"):
        check_complete(path, decode=True)


def test_jpeg_damage_without_marker_is_found_by_decoding_with_the_file_named(tmp_path):
    path = write_zeroed_jpeg(tmp_path / "polyp.jpg")
    check_complete(path)  # no stray marker: the cheap check cannot see this damage
    with pytest.raises(DataFileError, match=r"polyp\.jpg' is damaged: decoding it, libjpeg reports 'Corrupt JPEG"):
        validate_datalist([{"image": str(path)}], decode=True)
