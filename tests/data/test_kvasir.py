from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import PILReader
from monai.transforms import Compose, LoadImaged

from monai_masksup.data import (
    KVASIR_SEG_URL,
    BinarizeLabeld,
    DataFileError,
    DatasetLayoutError,
    EnsureRGBd,
    index_kvasir_seg,
)
from tests.conftest import shared_data_dir

from .image_files import truncate, write_pair


def _pipeline():
    return Compose(
        [
            LoadImaged(keys=["image", "label"], reader=PILReader, ensure_channel_first=True),
            EnsureRGBd(keys="image"),
            BinarizeLabeld(keys="label", threshold=127),
        ]
    )


def test_generated_layout_with_ids(tmp_path):
    for i, name in enumerate(["b", "a", "c"]):
        write_pair(tmp_path / "images" / f"{name}.jpg", tmp_path / "masks" / f"{name}.jpg", seed=i)
    assert [d["image"].rsplit("/", 1)[1] for d in index_kvasir_seg(tmp_path)] == ["a.jpg", "b.jpg", "c.jpg"]
    assert [d["label"].rsplit("/", 1)[1] for d in index_kvasir_seg(tmp_path, ids=["c", "a"])] == ["a.jpg", "c.jpg"]
    with pytest.raises(DataFileError, match="1 id.*zz"):
        index_kvasir_seg(tmp_path, ids=["a", "zz"])


def test_truncated_mask_is_named(tmp_path):
    write_pair(tmp_path / "images" / "a.jpg", tmp_path / "masks" / "a.jpg", height=40, width=40)
    truncate(tmp_path / "masks" / "a.jpg")
    with pytest.raises(DataFileError, match=r"(?i)masks/a\.jpg.*truncated"):
        index_kvasir_seg(tmp_path)


def test_empty_masks_folder_says_layout_and_url(tmp_path):
    write_pair(tmp_path / "images" / "a.jpg", tmp_path / "x" / "a.jpg")
    (tmp_path / "masks").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"no image files.*masks.*images/<id>\.jpg") as info:
        index_kvasir_seg(tmp_path)
    assert KVASIR_SEG_URL in str(info.value)


def test_missing_root_says_layout_and_url(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"images' does not exist.*simula"):
        index_kvasir_seg(tmp_path / "Kvasir-SEG")


@pytest.mark.real_data
def test_real_kvasir_seg_indexes_all_pairs_and_medico_splits():
    root = shared_data_dir("kvasir_seg", "Kvasir-SEG")
    splits = root.parent / "splits_medico2020"
    everything = index_kvasir_seg(root)
    train = index_kvasir_seg(root, ids=splits / "train.txt")
    val = index_kvasir_seg(root, ids=splits / "val.txt")
    assert (len(everything), len(train), len(val)) == (64, 48, 16)
    names = lambda dl: {d["image"] for d in dl}  # noqa: E731
    assert names(train).isdisjoint(names(val)) and names(train) | names(val) == names(everything)


@pytest.mark.real_data
def test_real_kvasir_seg_loads_as_rgb_with_binary_masks():
    root = shared_data_dir("kvasir_seg", "Kvasir-SEG")
    pipeline = _pipeline()
    for item in index_kvasir_seg(root)[:3]:
        out = pipeline(item)
        assert out["image"].shape[0] == 3
        assert out["label"].shape == (1, *out["image"].shape[1:])
        assert set(torch.unique(out["label"]).tolist()) == {0.0, 1.0}
        # JPEG masks are noisy: the raw values are not only {0, 255}, the binarised ones are
        raw = LoadImaged(keys="label", reader=PILReader)(dict(item))["label"]
        assert not set(np.unique(raw.numpy())) <= {0, 255}
