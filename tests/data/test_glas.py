from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import PILReader
from monai.transforms import Compose, LoadImaged

from monai_masksup.data import (
    BinarizeLabeld,
    CheckLabelValuesd,
    DataFileError,
    DatasetLayoutError,
    EnsureRGBd,
    GLAS_URL,
    index_glas,
    index_glas_export,
    read_glas_grades,
    split_train_val,
)

from .image_files import write_grey, write_pair, write_rgb


def _instance_annotation():
    anno = np.zeros((12, 16), np.uint8)
    anno[1:4, 1:5] = 1
    anno[6:10, 2:6] = 2
    anno[5:11, 9:15] = 3
    return anno


def _warwick(root, parts=(("train", 3), ("testA", 2), ("testB", 1))):
    rows = ["name, patient ID, grade (GlaS), grade (Sirinukunwattana et al. 2015)"]
    for part, count in parts:
        for n in range(1, count + 1):
            write_rgb(root / f"{part}_{n}.bmp", seed=n)
            write_grey(root / f"{part}_{n}_anno.bmp", _instance_annotation())
            rows.append(f"{part}_{n}, {n // 2 + 1}, benign, healthy")
    (root / "Grade.csv").write_text("\n".join(rows) + "\n")
    return root


def test_warwick_subsets_are_paired_and_ordered(tmp_path):
    root = _warwick(tmp_path / "Warwick QU Dataset (Released 2016_07_08)", (("train", 10), ("testA", 2), ("testB", 1)))
    train = index_glas(tmp_path, "train")  # the parent of the unzipped folder is found too
    assert [d["image"].rsplit("/", 1)[1] for d in train[:3]] == ["train_1.bmp", "train_2.bmp", "train_3.bmp"]
    assert len(train) == 10
    assert all(d["label"] == d["image"][: -len(".bmp")] + "_anno.bmp" for d in train)
    test = index_glas(root, "test")
    assert [d["image"].rsplit("/", 1)[1] for d in test] == ["testA_1.bmp", "testA_2.bmp", "testB_1.bmp"]
    assert len(index_glas(root, "testB")) == 1


def test_instance_annotations_are_binarised_in_a_monai_pipeline(tmp_path):
    datalist = index_glas(_warwick(tmp_path), "train")
    pipeline = Compose(
        [
            LoadImaged(keys=["image", "label"], reader=PILReader, ensure_channel_first=True),
            EnsureRGBd(keys="image"),
            CheckLabelValuesd(keys="label", max_channels=1),
            BinarizeLabeld(keys="label", threshold=0),
        ]
    )
    item = pipeline(datalist[0])
    expected = (_instance_annotation() > 0).astype(np.float32).T[None]  # PILReader gives (C, W, H)
    assert item["image"].shape == (3, 16, 12)
    assert item["label"].shape == (1, 16, 12)
    assert torch.equal(item["label"].as_tensor(), torch.from_numpy(expected))


def test_grades_and_patient_groups(tmp_path):
    root = _warwick(tmp_path, (("train", 6),))
    grades = read_glas_grades(root)
    assert grades["train_3"] == {"patient_id": "2", "grade": "benign", "grade_sirinukunwattana": "healthy"}
    items = index_glas(root, "train", with_grade=True)
    assert [d["patient_id"] for d in items] == ["1", "2", "2", "3", "3", "4"]
    train, val = split_train_val(items, val_fraction=0.34, seed=0, group_key="patient_id")
    assert {d["patient_id"] for d in train}.isdisjoint({d["patient_id"] for d in val})


def test_missing_annotation_is_named(tmp_path):
    root = _warwick(tmp_path)
    (root / "train_2_anno.bmp").unlink()
    with pytest.raises(DataFileError, match=r"train_2\.bmp.*no label"):
        index_glas(root, "train")


def test_unknown_subset_is_refused(tmp_path):
    with pytest.raises(ValueError, match="testC"):
        index_glas(_warwick(tmp_path), "testC")


def test_export_layout_is_detected(tmp_path):
    for split, names in (("train", ["a", "b"]), ("test", ["c"])):
        for i, name in enumerate(names):
            write_pair(tmp_path / split / "img" / f"{name}.png", tmp_path / split / "labelcol" / f"{name}.png", seed=i)
    assert [d["image"].rsplit("/", 1)[1] for d in index_glas(tmp_path, "train")] == ["a.png", "b.png"]
    test = index_glas_export(tmp_path, "test")
    assert test == [{"image": str(tmp_path / "test/img/c.png"), "label": str(tmp_path / "test/labelcol/c.png")}]


def test_missing_root_says_layouts_and_url(tmp_path):
    with pytest.raises(DatasetLayoutError, match="does not exist.*train_<n>_anno.bmp.*labelcol") as info:
        index_glas(tmp_path / "nowhere")
    assert GLAS_URL in str(info.value)


def test_folder_without_glas_files_says_layouts_and_url(tmp_path):
    (tmp_path / "other").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"no GLaS data found") as info:
        index_glas(tmp_path)
    assert GLAS_URL in str(info.value)


def test_empty_test_part_is_reported(tmp_path):
    root = _warwick(tmp_path, (("train", 2),))
    with pytest.raises(DatasetLayoutError, match=r"testA_<n>\.bmp"):
        index_glas(root, "testA")
