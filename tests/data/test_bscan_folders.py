from __future__ import annotations

import numpy as np
import pytest

from monai_masksup.data import DataFileError, DatasetLayoutError, index_bscan_folders, write_bscan_pngs

from .image_files import write_grey


def test_volume_folders_list_their_bscans_in_order(tmp_path):
    image = np.arange(3 * 32 * 32, dtype=np.uint8).reshape(3, 32, 32)
    write_bscan_pngs(image, image % 4, tmp_path / "Cirrus" / "TRAIN001")
    write_bscan_pngs(image, None, tmp_path / "Cirrus" / "TEST001")
    items = index_bscan_folders(tmp_path)
    assert [i["volume"] for i in items] == ["Cirrus/TEST001", "Cirrus/TRAIN001"]
    assert "label" not in items[0]
    assert [p.rsplit("/", 1)[1] for p in items[1]["label"]] == ["bscan_000.png", "bscan_001.png", "bscan_002.png"]


def test_bscans_of_different_sizes_are_named(tmp_path):
    write_bscan_pngs(np.zeros((2, 32, 32), np.uint8), None, tmp_path / "v")
    write_grey(tmp_path / "v" / "images" / "bscan_002.png", np.zeros((30, 32)))
    odd = r"B-scans of volume '.*v' differ in size: '.*bscan_002\.png' is \(30, 32\)"
    with pytest.raises(DataFileError, match=odd):
        index_bscan_folders(tmp_path)


def test_unpaired_bscan_and_missing_layout_are_named(tmp_path):
    write_bscan_pngs(np.zeros((2, 32, 32), np.uint8), np.zeros((2, 32, 32), np.uint8), tmp_path / "v")
    (tmp_path / "v" / "labels" / "bscan_001.png").unlink()
    with pytest.raises(DataFileError, match=r"bscan_001\.png' has no label"):
        index_bscan_folders(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"no 'images' folder under '.*empty'"):
        index_bscan_folders(tmp_path / "empty")
    with pytest.raises(ValueError, match="uint8"):
        write_bscan_pngs(np.zeros((2, 32, 32), np.float32), None, tmp_path / "w")
