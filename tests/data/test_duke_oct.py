from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.transforms import Compose

from monai_masksup.data import (
    DUKE_OCT_URL,
    DataFileError,
    DatasetLayoutError,
    duke_oct_transforms,
    fluid_column_extent,
    index_duke_oct,
)
from tests.conftest import shared_data_dir

from .image_files import write_grey, write_rgb


def _write_duke(root, n=13, width=10, height=6):
    """A Duke-like export: RGB scans, masks with fluid stored as 255/254 (regions 1 and 2)."""
    for i in range(n):
        write_rgb(root / "images" / f"img_{i}.png", height=height, width=width, seed=i)
        mask = np.zeros((height, width), dtype=np.uint8)
        if i % 2 == 0:
            mask[1:3, 3 + i % 3 : 5 + i % 3] = 255
            mask[4, 2] = 254
        write_grey(root / "masks_fluid1" / f"img_{i}.png", mask)


def test_subject_is_index_div_11_plus_1(tmp_path):
    _write_duke(tmp_path, n=13)
    items = index_duke_oct(tmp_path)
    assert [item["subject"] for item in items] == [1] * 11 + [2] * 2
    assert [item["image"].rsplit("_", 1)[1] for item in items[:3]] == ["0.png", "1.png", "2.png"]
    assert [item["subject"] for item in index_duke_oct(tmp_path, subjects=[2])] == [2, 2]
    assert all("annotated_columns" not in item for item in items)


def test_fluid_extent_is_per_subject_union_of_fluid_columns(tmp_path):
    _write_duke(tmp_path, n=13)
    items = index_duke_oct(tmp_path, annotated_columns="fluid_extent")
    # subject 1: even i in 0..10 put fluid in columns 3+i%3 .. 4+i%3 and column 2 -> 2..6; subject 2: i=12 -> 2..4
    assert {tuple(item["annotated_columns"]) for item in items[:11]} == {(2, 7)}
    assert {tuple(item["annotated_columns"]) for item in items[11:]} == {(2, 5)}


def test_explicit_ranges_global_and_per_subject(tmp_path):
    _write_duke(tmp_path, n=13)
    assert {tuple(i["annotated_columns"]) for i in index_duke_oct(tmp_path, annotated_columns=(1, 9))} == {(1, 9)}
    items = index_duke_oct(tmp_path, annotated_columns={2: (0, 4)})
    assert "annotated_columns" not in items[0] and items[12]["annotated_columns"] == [0, 4]
    with pytest.raises(ValueError, match="fluid_extent"):
        index_duke_oct(tmp_path, annotated_columns="middle")


def test_loaded_mask_is_binary_fluid_with_ignored_columns(tmp_path):
    _write_duke(tmp_path, n=1)
    item = index_duke_oct(tmp_path, annotated_columns=(2, 6))[0]
    out = Compose(duke_oct_transforms(ignore_value=255, normalise=False))(item)
    assert out["image"].shape == (1, 10, 6) and out["label"].shape == (1, 10, 6)  # (C, width, height)
    label = out["label"][0].numpy()
    expected = np.zeros((10, 6))
    expected[3:5, 1:3] = 1  # mask[1:3, 3:5] = 255, transposed to (width, height)
    expected[2, 4] = 1  # value 254 is fluid region 2
    expected[:2], expected[6:] = 255, 255
    np.testing.assert_array_equal(label, expected)
    assert out["image"].max() > 1  # stored 0-255 kept
    normalised = Compose(duke_oct_transforms(lower=0, upper=100))(item)["image"]
    assert normalised.min() == 0.0 and normalised.max() == 1.0


def test_subject_without_fluid_cannot_estimate_extent(tmp_path):
    _write_duke(tmp_path, n=13)
    write_grey(tmp_path / "masks_fluid1" / "img_12.png", np.zeros((6, 10)))
    with pytest.raises(DataFileError, match=r"no fluid in any of the masks img_11\.png, img_12\.png"):
        index_duke_oct(tmp_path, annotated_columns="fluid_extent")
    with pytest.raises(DataFileError, match="no fluid"):
        fluid_column_extent([tmp_path / "masks_fluid1" / "img_12.png"])


def test_errors_name_folder_or_file(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"images' does not exist") as info:
        index_duke_oct(tmp_path)
    assert DUKE_OCT_URL in str(info.value)
    _write_duke(tmp_path, n=2)
    (tmp_path / "masks_fluid1" / "img_1.png").unlink()
    with pytest.raises(DataFileError, match=r"images/img_1\.png' has no label"):
        index_duke_oct(tmp_path)
    write_grey(tmp_path / "masks_fluid1" / "img_1.png", np.zeros((5, 10)))
    with pytest.raises(DataFileError, match=r"size mismatch.*img_1\.png"):
        index_duke_oct(tmp_path)
    write_grey(tmp_path / "masks_fluid1" / "img_1.png", np.zeros((6, 10)))
    write_rgb(tmp_path / "images" / "scan_a.png", height=6, width=10)
    write_grey(tmp_path / "masks_fluid1" / "scan_a.png", np.zeros((6, 10)))
    with pytest.raises(DataFileError, match=r"scan_a\.png' is not named img_<i>"):
        index_duke_oct(tmp_path)
    (tmp_path / "images" / "scan_a.png").unlink()
    (tmp_path / "masks_fluid1" / "scan_a.png").unlink()
    with pytest.raises(DataFileError, match=r"subject\(s\) \[3\]"):
        index_duke_oct(tmp_path, subjects=[3])


@pytest.mark.real_data
def test_real_duke_subset_indexes_two_subjects_and_loads():
    root = shared_data_dir("duke_oct")
    items = index_duke_oct(root, annotated_columns="fluid_extent")
    assert len(items) == 22
    assert [item["subject"] for item in items] == [1] * 11 + [2] * 11
    # README: subject 2's fluid is cut straight at column 109; no fluid of subject 1 left of column 151
    assert items[0]["annotated_columns"][0] == 151 and items[11]["annotated_columns"][0] == 109
    pipeline = Compose(duke_oct_transforms())
    out = pipeline(items[14])
    assert out["image"].shape == (1, 768, 496) and out["label"].shape == (1, 768, 496)
    assert 0.0 == out["image"].min() < out["image"].max() == 1.0  # normalised per B-scan
    values = set(torch.unique(out["label"]).tolist())
    assert values == {0.0, 1.0, 255.0}
    assert (out["label"][0, :109] == 255).all() and (out["label"][0, 109:308] != 255).all()
    empty = pipeline(items[9])  # img_9 has no fluid
    assert set(torch.unique(empty["label"]).tolist()) == {0.0, 255.0}
