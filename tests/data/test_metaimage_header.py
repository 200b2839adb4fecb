from __future__ import annotations

import pytest

from monai_masksup.data import DataFileError, metaimage_size, read_metaimage_header

HEADER = "ObjectType = Image\nNDims = 3\nDimSize = 5 4 3\nElementType = MET_USHORT\nElementDataFile = v.raw\n"


def test_size_is_dimsize_in_x_y_z_order(tmp_path):
    (tmp_path / "v.mhd").write_text(HEADER)
    (tmp_path / "v.raw").write_bytes(bytes(5 * 4 * 3 * 2))
    assert metaimage_size(tmp_path / "v.mhd") == (5, 4, 3)
    assert read_metaimage_header(tmp_path / "v.mhd")["ElementType"] == "MET_USHORT"


def test_missing_raw_is_named(tmp_path):
    (tmp_path / "v.mhd").write_text(HEADER)
    with pytest.raises(DataFileError, match=r"v\.mhd' names its pixel data file 'v\.raw', which is missing"):
        metaimage_size(tmp_path / "v.mhd")


def test_truncated_raw_is_named_with_sizes(tmp_path):
    (tmp_path / "v.mhd").write_text(HEADER)
    (tmp_path / "v.raw").write_bytes(bytes(100))
    with pytest.raises(DataFileError, match=r"v\.raw' of .* is truncated: 100 bytes, its header needs 120"):
        metaimage_size(tmp_path / "v.mhd")


def test_not_a_header_and_missing_file(tmp_path):
    (tmp_path / "v.mhd").write_text("hello\n")
    with pytest.raises(DataFileError, match=r"v\.mhd' is not a MetaImage header: .*DimSize"):
        metaimage_size(tmp_path / "v.mhd")
    with pytest.raises(DataFileError, match=r"w\.mhd' does not exist"):
        metaimage_size(tmp_path / "w.mhd")
