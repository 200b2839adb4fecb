from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from monai.transforms import Compose

from monai_masksup.data import (
    RETOUCH_CLASSES,
    RETOUCH_URL,
    DataFileError,
    DatasetLayoutError,
    find_data_error,
    index_retouch,
    oct_volume_transforms,
)

from .oct_volumes import ramp_volume, write_retouch_volume


@pytest.fixture(scope="module")
def retouch_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("retouch")
    label = np.zeros((3, 4, 5), dtype=np.uint8)
    label[1, 2, 3], label[2, 0, 0] = 3, 1
    write_retouch_volume(root / "RETOUCH-TrainingSet-Cirrus" / "TRAIN002", ramp_volume(), label)
    write_retouch_volume(root / "RETOUCH-TrainingSet-Cirrus" / "TRAIN010", ramp_volume(offset=1), label)
    write_retouch_volume(root / "Topcon" / "TRAIN049", ramp_volume(), label)
    return root


def test_vendor_folders_as_released_or_short_and_natural_volume_order(retouch_root):
    items = index_retouch(retouch_root)
    assert [(i["vendor"], i["volume"]) for i in items] == [
        ("Cirrus", "TRAIN002"),
        ("Cirrus", "TRAIN010"),
        ("Topcon", "TRAIN049"),
    ]
    assert items[0]["subject"] == "Cirrus/TRAIN002" and items[0]["label"].endswith("TRAIN002/reference.mhd")
    assert [i["volume"] for i in index_retouch(retouch_root, vendors=["topcon"])] == ["TRAIN049"]
    assert RETOUCH_CLASSES == ("background", "IRF", "SRF", "PED")


def test_itk_reader_gives_width_depth_bscans_with_labels_in_place(retouch_root):
    item = index_retouch(retouch_root)[0]
    out = Compose(oct_volume_transforms(num_classes=4, lower=0, upper=100))(item)
    assert out["image"].shape == (1, 5, 4, 3) and out["label"].shape == (1, 5, 4, 3)
    # voxel (k, r, c) of the written array is (c, r, k) after ITK's reversed indexing;
    # the ramp's range 0 .. 20*2 + 5*3 + 4 = 59 is scaled onto [0, 1]
    assert out["image"][0, 3, 2, 1].item() == pytest.approx((20 * 1 + 5 * 2 + 3) / 59)
    assert out["label"][0, 3, 2, 1].item() == 3 and out["label"][0, 0, 0, 2].item() == 1
    assert torch.count_nonzero(out["label"]) == 2


def test_label_value_outside_classes_is_named(tmp_path):
    label = np.zeros((3, 4, 5), dtype=np.uint8)
    label[0, 0, 0] = 7
    write_retouch_volume(tmp_path / "Spectralis" / "TRAIN025", ramp_volume(), label)
    item = index_retouch(tmp_path)[0]
    with pytest.raises(RuntimeError) as info:  # MONAI's Compose wraps transform errors
        Compose(oct_volume_transforms(num_classes=4))(item)
    error = find_data_error(info.value)
    assert isinstance(error, DataFileError)
    assert re.search(r"TRAIN025/reference\.mhd' holds values 7 outside the allowed \{0, 1, 2, 3\}", str(error))


def test_missing_reference_is_an_error_unless_unlabelled_allowed(tmp_path):
    write_retouch_volume(tmp_path / "Cirrus" / "TEST001", ramp_volume(), None)
    with pytest.raises(DataFileError, match=r"TEST001/oct\.mhd' has no 'reference\.mhd'"):
        index_retouch(tmp_path)
    items = index_retouch(tmp_path, require_reference=False)
    assert "label" not in items[0] and items[0]["volume"] == "TEST001"


def test_unpaired_reference_and_size_mismatch_are_named(tmp_path):
    write_retouch_volume(tmp_path / "Cirrus" / "TRAIN001", ramp_volume(), np.zeros((3, 4, 6), dtype=np.uint8))
    mismatch = r"size mismatch.*TRAIN001/oct\.mhd' is \(5, 4, 3\).*reference\.mhd' is \(6, 4, 3\)"
    with pytest.raises(DataFileError, match=mismatch):
        index_retouch(tmp_path)
    (tmp_path / "Cirrus" / "TRAIN001" / "oct.mhd").unlink()
    with pytest.raises(DataFileError, match=r"TRAIN001' has no 'oct\.mhd' but a 'reference\.mhd'"):
        index_retouch(tmp_path)


def test_layout_errors_name_folder_and_url(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"does not exist") as info:
        index_retouch(tmp_path / "nowhere")
    assert RETOUCH_URL in str(info.value)
    (tmp_path / "scans").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"no vendor folder in '.*'"):
        index_retouch(tmp_path)
    (tmp_path / "Cirrus").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"Cirrus'\] hold no volume folder"):
        index_retouch(tmp_path)
    with pytest.raises(DatasetLayoutError, match=r"vendor\(s\) \['topcon'\]"):
        index_retouch(tmp_path, vendors=["Topcon"])
    with pytest.raises(ValueError, match="unknown RETOUCH vendor"):
        index_retouch(tmp_path, vendors=["Heidelberg"])
