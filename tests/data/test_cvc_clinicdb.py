from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from monai.transforms import Compose, LoadImage, LoadImaged

from monai_masksup.data import (
    CVC_CLINICDB_URL,
    BinarizeLabeld,
    DataFileError,
    DatasetLayoutError,
    EnsureRGB,
    EnsureRGBd,
    TiffFileReader,
    index_cvc_clinicdb,
)
from tests.conftest import shared_data_dir


def _pipeline():
    return Compose(
        [
            LoadImaged(keys=["image", "label"], reader=TiffFileReader, ensure_channel_first=True),
            EnsureRGBd(keys="image"),
            BinarizeLabeld(keys="label", threshold=127),
        ]
    )


def _frame(root, n, mask_shape=(10, 12)):
    rng = np.random.default_rng(n)
    (root / "Original").mkdir(parents=True, exist_ok=True)
    (root / "Ground Truth").mkdir(parents=True, exist_ok=True)
    frame = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    # RGB samples tagged BlackIsZero, as the real frames are
    tifffile.imwrite(root / "Original" / f"{n}.tif", frame, photometric="minisblack", planarconfig="contig")
    mask = np.zeros(mask_shape, np.uint8)
    mask[2:5, 3:8] = 255
    mask[0, 0] = 12  # the faint halo some real masks carry
    tifffile.imwrite(root / "Ground Truth" / f"{n}.tif", mask)


def test_generated_layout_is_ordered_by_frame_number_and_binarised(tmp_path):
    for n in (21, 1, 101):
        _frame(tmp_path / "CVC-ClinicDB", n)
    datalist = index_cvc_clinicdb(tmp_path)
    assert [d["image"].rsplit("/", 1)[1] for d in datalist] == ["1.tif", "21.tif", "101.tif"]
    assert all("Ground Truth" in d["label"] for d in datalist)
    out = _pipeline()(datalist[0])
    expected = np.zeros((10, 12), np.float32)
    expected[2:5, 3:8] = 1.0
    assert torch.equal(out["label"][0], torch.from_numpy(expected.T))
    assert out["image"].shape == (3, 12, 10)


def test_size_mismatch_is_named(tmp_path):
    _frame(tmp_path, 1, mask_shape=(10, 11))
    with pytest.raises(DataFileError, match=r"Original/1\.tif' is 10x12.*Ground Truth/1\.tif' is 10x11"):
        index_cvc_clinicdb(tmp_path)


def test_missing_folder_says_layout_and_url(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"Original' does not exist.*Ground Truth") as info:
        index_cvc_clinicdb(tmp_path)
    assert CVC_CLINICDB_URL in str(info.value)


@pytest.mark.real_data
def test_real_cvc_clinicdb_frames_load_in_colour_with_binary_masks():
    root = shared_data_dir("cvc_clinicdb", "CVC-ClinicDB")
    datalist = index_cvc_clinicdb(root)
    assert len(datalist) == 31
    pipeline = _pipeline()
    for item in datalist[:3]:
        out = pipeline(item)
        image = out["image"]
        assert image.shape == (3, 384, 288)
        assert not torch.equal(image[0], image[1]) and not torch.equal(image[1], image[2])
        assert out["label"].shape == (1, 384, 288)
        assert set(torch.unique(out["label"]).tolist()) == {0.0, 1.0}


@pytest.mark.real_data
def test_plain_monai_loader_gives_one_grey_plane_that_ensure_rgb_refuses():
    root = shared_data_dir("cvc_clinicdb", "CVC-ClinicDB")
    path = str(root / "Original" / "1.tif")
    grey = LoadImage(image_only=True, ensure_channel_first=True)(path)
    assert grey.shape == (1, 384, 288)  # the pitfall this package guards against
    with pytest.raises(DataFileError, match=r"Original/1\.tif.*1 channel"):
        EnsureRGB()(grey)
