"""Tests of HoleMaskFolder (and its deprecated LoadHoleMaskd) on generated mask PNGs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from monai_masksup.transforms import HoleMaskFolder, LoadHoleMaskd, RandHoleMaskd

# No augmentation: the mask is resampled as it is (nearest neighbour).
PLAIN = {"dilation_range": None, "max_rotation": 0.0, "max_translation": 0.0, "crop_range": (1.0, 1.0)}


def _draw(folder: HoleMaskFolder, spatial_size) -> np.ndarray:
    """One mask through the MaskGenerator call, as the ``(1, H, W)`` array of the folder's former call form."""
    return folder(1, spatial_size)[0].numpy()


def _save(path, array) -> None:
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


@pytest.fixture
def band_dir(tmp_path):
    """One 128 x 128 mask, white (= hole) band on rows 40..59."""
    mask = np.zeros((128, 128), np.uint8)
    mask[40:60] = 255
    _save(tmp_path / "00000.png", mask)
    return tmp_path


def test_white_pixels_are_holes_and_nearest_resize_keeps_the_band(band_dir):
    mask = _draw(HoleMaskFolder(band_dir, **PLAIN), (64, 64))
    assert mask.shape == (1, 64, 64) and mask.dtype == np.float32
    # Rows 40..59 of 128 are rows 20..29 of 64: 10 of 64 rows.
    np.testing.assert_array_equal(np.nonzero(mask[0, :, 0])[0], np.arange(20, 30))
    assert mask.mean() == pytest.approx(10 / 64)


def test_binarises_at_share_of_the_maximum(tmp_path):
    values = np.zeros((32, 32), np.uint8)
    values[:, :8], values[:, 8:16], values[:, 16:24] = 200, 130, 110  # threshold 0.6 * 200 = 120
    _save(tmp_path / "m.png", values)
    mask = _draw(HoleMaskFolder(tmp_path, **PLAIN), (32, 32))
    assert mask[0, :, :16].all() and not mask[0, :, 16:].any()


def test_dilation_grows_a_single_pixel_to_the_drawn_square(tmp_path):
    dot = np.zeros((41, 41), np.uint8)
    dot[20, 20] = 255
    _save(tmp_path / "dot.png", dot)
    folder = HoleMaskFolder(tmp_path, **{**PLAIN, "dilation_range": (9, 9)})
    mask = _draw(folder, (41, 41))
    assert mask.sum() == 81
    assert mask[0, 16:25, 16:25].all()


def test_index_range_restricts_the_files(tmp_path):
    _save(tmp_path / "0.png", np.zeros((16, 16)))
    _save(tmp_path / "1.png", np.full((16, 16), 255))
    folder = HoleMaskFolder(tmp_path, index_range=(1, 2), **PLAIN)
    folder.set_random_state(0)
    assert all(_draw(folder, (16, 16)).all() for _ in range(5))


def test_augmentation_is_reproducible_under_a_seed_and_varies(band_dir):
    a = HoleMaskFolder(band_dir).set_random_state(4)
    b = HoleMaskFolder(band_dir).set_random_state(4)
    draws_a = [_draw(a, (96, 80)) for _ in range(3)]
    draws_b = [_draw(b, (96, 80)) for _ in range(3)]
    for x, y in zip(draws_a, draws_b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(draws_a[0], draws_a[1])


def test_dict_writes_keys_and_leaves_the_image_unchanged(band_dir):
    img = torch.full((3, 64, 64), 2.0)
    out = RandHoleMaskd(keys="image", mask_generator=HoleMaskFolder(band_dir, **PLAIN), fill_value=-1.0)({"image": img})
    assert out["image"] is img and torch.all(img == 2.0)
    hole = out["hole_mask"][0] == 1
    assert hole[20:30].all() and not hole[:20].any() and not hole[30:].any()
    assert torch.all(out["image_masked"][:, hole] == -1.0)
    assert torch.all(out["image_masked"][:, ~hole] == 2.0)


def test_missing_folder_raises_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_masks"):
        HoleMaskFolder(tmp_path / "no_such_masks")


def test_empty_folder_raises_naming_it(tmp_path):
    (tmp_path / "notes.txt").write_text("not a mask")
    with pytest.raises(ValueError, match=str(tmp_path)):
        HoleMaskFolder(tmp_path)


def test_unreadable_mask_file_raises_naming_it(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x00garbage, not a PNG\xff" * 8)
    folder = HoleMaskFolder(tmp_path)
    with pytest.raises(ValueError, match="broken.png"):
        _draw(folder, (32, 32))


def test_3d_image_raises_saying_2d_only(band_dir):
    with pytest.raises(ValueError, match="2D"):
        RandHoleMaskd(keys="image", mask_generator=HoleMaskFolder(band_dir))({"image": np.zeros((1, 16, 16, 8))})


def test_deprecated_load_hole_maskd_warns_and_masks_as_rand_hole_maskd_with_a_folder(band_dir):
    img = torch.full((2, 64, 48), 2.0)
    with pytest.warns(FutureWarning, match="RandHoleMaskd"):
        old = LoadHoleMaskd(keys="image", mask_dir=band_dir, fill_value=-1.0, prob=0.5).set_random_state(8)
    new = RandHoleMaskd(keys="image", mask_generator=HoleMaskFolder(band_dir), fill_value=-1.0, prob=0.5)
    new.set_random_state(8)
    outs = [(old({"image": img}), new({"image": img})) for _ in range(6)]
    for a, b in outs:
        assert torch.equal(a["image_masked"], b["image_masked"]) and torch.equal(a["hole_mask"], b["hole_mask"])
    # prob=0.5 over six calls with this seed: some masks are empty, some are not
    assert {bool(a["hole_mask"].any()) for a, _ in outs} == {True, False}


def test_masks_come_as_a_batch_on_the_device_and_a_generator_seed_reproduces_them(band_dir):
    folder = HoleMaskFolder(band_dir)
    masks = folder(4, (48, 40), device="cpu", generator=torch.Generator().manual_seed(1))
    assert masks.shape == (4, 1, 48, 40) and masks.dtype == torch.float32 and masks.device.type == "cpu"
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    again = HoleMaskFolder(band_dir)(4, (48, 40), generator=torch.Generator().manual_seed(1))
    assert torch.equal(masks, again)
    assert not torch.equal(masks[0], masks[1])  # every mask of the batch has its own augmentation
