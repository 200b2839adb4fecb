from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from monai.data import PILReader
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged
from PIL import Image

from monai_masksup.data import (
    BinarizeLabeld,
    CheckLabelValuesd,
    EnsureRGBd,
    TiffFileReader,
    index_cvc_clinicdb,
    index_kvasir_seg,
    make_synthetic_polyps,
    validate_datalist,
)


def _bundle_preprocessing() -> Compose:
    """The loading and label checks of the masksup_kvasir bundle's ``train#deterministic_transforms``."""
    return Compose(
        [
            LoadImaged(["image", "label"], reader=[PILReader, TiffFileReader()], image_only=True),
            EnsureChannelFirstd(["image", "label"]),
            EnsureRGBd("image"),
            BinarizeLabeld("label", threshold=127),
            CheckLabelValuesd("label", allowed=(0, 1)),
        ]
    )


def test_writes_the_native_kvasir_and_cvc_layouts(tmp_path):
    root = make_synthetic_polyps(tmp_path / "polyps", n_kvasir=3, n_cvc=5, n_cvc_test=2, size=(64, 80), seed=0)
    kvasir = index_kvasir_seg(root / "Kvasir-SEG")
    cvc = index_cvc_clinicdb(root / "CVC-ClinicDB")
    assert len(kvasir) == 3 and len(cvc) == 5
    assert sorted(p.name for p in (root / "CVC-ClinicDB" / "Original").iterdir()) == [f"{n}.tif" for n in "12345"]
    assert sorted(p.name for p in (root / "CVC-ClinicDB" / "Ground Truth").iterdir()) == [
        f"{n}.tif" for n in "12345"
    ]
    for item in kvasir:
        name = item["image"].rsplit("/", 1)[-1]
        assert len(name) == len("cju0qkwl35piu0993l0dewei2.jpg") and name.startswith("cju")
        for key in ("image", "label"):
            with Image.open(item[key]) as im:
                assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (80, 64))
    with tifffile.TiffFile(root / "CVC-ClinicDB" / "Original" / "1.tif") as tif:
        page = tif.pages[0]
        assert (page.shape, page.dtype, page.photometric) == ((64, 80, 3), np.uint8, tifffile.PHOTOMETRIC.RGB)
    with tifffile.TiffFile(root / "CVC-ClinicDB" / "Ground Truth" / "1.tif") as tif:
        assert (tif.pages[0].shape, tif.pages[0].dtype) == ((64, 80), np.uint8)
    # the last n_cvc_test frames are the test split, in the bundle's --cvc_test_ids format
    assert (root / "splits" / "cvc_test.txt").read_text() == "4\n5\n"
    test_items = index_cvc_clinicdb(root / "CVC-ClinicDB", ids=root / "splits" / "cvc_test.txt")
    assert [d["image"].rsplit("/", 1)[-1] for d in test_items] == ["4.tif", "5.tif"]
    validate_datalist(kvasir + cvc, decode=True)


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    a = make_synthetic_polyps(tmp_path / "a", n_kvasir=2, n_cvc=2, n_cvc_test=1, seed=3)
    b = make_synthetic_polyps(tmp_path / "b", n_kvasir=2, n_cvc=2, n_cvc_test=1, seed=3)
    c = make_synthetic_polyps(tmp_path / "c", n_kvasir=2, n_cvc=2, n_cvc_test=1, seed=4)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 2 * 2 + 2 * 2 + 1
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    frame = Path("CVC-ClinicDB") / "Original" / "2.tif"
    assert (a / frame).read_bytes() != (c / frame).read_bytes()
    assert sorted(p.name for p in (a / "Kvasir-SEG" / "images").iterdir()) != sorted(
        p.name for p in (c / "Kvasir-SEG" / "images").iterdir()
    )


def test_bundle_preprocessing_gives_rgb_images_and_binary_masks(tmp_path):
    root = make_synthetic_polyps(tmp_path, n_kvasir=4, n_cvc=4, n_cvc_test=1, size=(48, 64), seed=1)
    items = index_kvasir_seg(root / "Kvasir-SEG") + index_cvc_clinicdb(root / "CVC-ClinicDB")
    load = _bundle_preprocessing()
    for item in items:
        out = load(item)
        # PIL and TiffFileReader both give (C, W, H)
        assert tuple(out["image"].shape) == (3, 64, 48), item["image"]
        assert tuple(out["label"].shape) == (1, 64, 48), item["label"]
        assert set(np.unique(out["label"].numpy()).tolist()) == {0.0, 1.0}
        assert 0.01 < float(out["label"].mean()) < 0.8


def test_raw_masks_need_the_threshold_like_the_real_ones(tmp_path):
    root = make_synthetic_polyps(tmp_path, n_kvasir=2, n_cvc=2, n_cvc_test=1, seed=2)
    jpeg_mask = np.asarray(Image.open(next((root / "Kvasir-SEG" / "masks").iterdir())))
    # JPEG compression noise: grey levels other than 0 and 255, but all near one of them
    assert set(np.unique(jpeg_mask).tolist()) - {0, 255}
    assert (np.abs(jpeg_mask.astype(int) - 127.5) > 60).mean() > 0.99
    tif_label = tifffile.imread(root / "CVC-ClinicDB" / "Ground Truth" / "1.tif")
    values = set(np.unique(tif_label).tolist())
    assert {0, 255} <= values and all(v < 128 for v in values - {255})  # faint halo below the >= 128 threshold


def test_polyps_are_pinker_than_the_mucosa(tmp_path):
    # polyps are pink (blue ~ 120), mucosa orange-red (blue ~ 65): blue separates them on average
    root = make_synthetic_polyps(tmp_path, n_kvasir=4, n_cvc=2, n_cvc_test=1, seed=5)
    for item in index_kvasir_seg(root / "Kvasir-SEG"):
        blue = np.asarray(Image.open(item["image"]))[..., 2].astype(float)
        polyp = np.asarray(Image.open(item["label"]))[..., 0] > 127
        assert blue[polyp].mean() > blue[~polyp].mean() + 25


def test_default_data_set_is_fast(tmp_path):
    start = time.perf_counter()
    root = make_synthetic_polyps(tmp_path)
    assert time.perf_counter() - start < 2.0
    assert len(index_kvasir_seg(root / "Kvasir-SEG")) == 16 and len(index_cvc_clinicdb(root / "CVC-ClinicDB")) == 10


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"size": (16, 64)}, "size"),
        ({"n_kvasir": 0}, "n_kvasir"),
        ({"n_cvc": 3, "n_cvc_test": 3}, "n_cvc_test"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_synthetic_polyps(tmp_path, **kwargs)
