"""Tests of apply_mask, the one masking operation (dtypes, non-finite values, batches, types, errors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_masksup.transforms import apply_mask

_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.uint8, torch.int32]


@pytest.mark.parametrize("dtype", _DTYPES)
@pytest.mark.parametrize("fill", [0.0, -5.0, 7.0])
def test_apply_mask_equals_a_select_for_every_dtype(dtype, fill):
    # Floating images are masked by image * (1 - mask) + fill * mask, integer ones by a select: both must give
    # exactly the select's result, in the image's dtype.
    rng = np.random.default_rng(3)
    img = torch.as_tensor(rng.uniform(0, 200, (3, 20, 16))).to(dtype)
    hole = torch.as_tensor(rng.random((1, 20, 16)) < 0.4, dtype=torch.float32)
    if dtype == torch.uint8 and fill < 0:
        with pytest.raises(ValueError, match="fill_value -5.0 does not fit the image dtype torch.uint8"):
            apply_mask(img, hole, fill)
        return
    masked = apply_mask(img, hole, fill)
    want = torch.where(hole.bool(), torch.as_tensor(fill, dtype=dtype), img)
    assert masked.dtype == dtype and torch.equal(masked, want)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_apply_mask_fills_holes_over_non_finite_values_and_keeps_them_elsewhere(bad):
    img = torch.ones(2, 6, 5)
    img[0, 1, 1] = img[1, 4, 3] = bad  # (1, 1) lies in a hole, (4, 3) does not
    hole = torch.zeros(1, 6, 5)
    hole[0, 1, 1] = hole[0, 2, 2] = 1.0
    masked = apply_mask(img, hole, -5.0)
    assert masked[0, 1, 1] == -5.0 and masked[1, 1, 1] == -5.0 and masked[0, 2, 2] == -5.0
    assert torch.equal(masked[1, 4, 3], img[1, 4, 3]) or (masked[1, 4, 3].isnan() and img[1, 4, 3].isnan())
    assert masked[1, 4, 3].isfinite().item() is False and torch.equal(masked[0, 4, 3], torch.tensor(1.0))


def test_a_batch_takes_each_sample_its_own_mask_in_every_channel():
    img = torch.arange(1.0, 1.0 + 2 * 3 * 2 * 2).view(2, 3, 2, 2)  # all values >= 1: 0 only from the mask
    masks = torch.zeros(2, 1, 2, 2)
    masks[0, 0, 0, 1] = masks[1, 0, 1, 0] = masks[1, 0, 1, 1] = 1.0
    masked = apply_mask(img, masks, batched=True)
    assert masked.shape == img.shape
    expected = img.clone()
    expected[0, :, 0, 1] = 0.0
    expected[1, :, 1, :] = 0.0
    assert torch.equal(masked, expected)


def test_numpy_stays_numpy_metatensor_keeps_meta_and_the_input_is_unchanged():
    img = np.full((2, 4, 4), 3.0, np.float32)
    mask = np.zeros((1, 4, 4), np.float32)
    mask[0, 1:3, 1:3] = 1.0
    out = apply_mask(img, mask, 9.0)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert (out[:, 1:3, 1:3] == 9.0).all() and out.sum() == 2 * (12 * 3.0 + 4 * 9.0)
    assert (img == 3.0).all()
    meta = apply_mask(MetaTensor(torch.from_numpy(img), meta={"filename_or_obj": "a.png"}), torch.from_numpy(mask))
    assert isinstance(meta, MetaTensor) and meta.meta["filename_or_obj"] == "a.png"


def test_mismatched_shapes_raise_naming_both():
    with pytest.raises(ValueError, match=r"\(8, 8\) differs from image \(4, 4\)"):
        apply_mask(torch.zeros(3, 4, 4), torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match=r"\(3, 1, 4, 4\) does not fit an image of shape \(2, 3, 4, 4\)"):
        apply_mask(torch.zeros(2, 3, 4, 4), torch.zeros(3, 1, 4, 4), batched=True)


@pytest.mark.parametrize("batched", [False, True])
def test_a_soft_mask_is_binarised_at_one_half_on_both_paths(batched):
    # float32 on CPU takes the product path, int32 and an image with a non-finite value take the select path;
    # all three must mask exactly the pixels whose mask value is above 0.5 and keep the others as they are.
    soft = torch.tensor([0.0, 0.2, 0.5, 0.51, 0.8, 1.0]).view(1, 1, 6).expand(1, 2, 6).clone()
    img = torch.arange(10.0, 10.0 + 3 * 2 * 6).view(3, 2, 6)
    if batched:
        soft, img = soft.unsqueeze(0).expand(2, -1, -1, -1), img.unsqueeze(0).expand(2, -1, -1, -1)
    kept = torch.tensor([True, True, True, False, False, False]).expand_as(img)
    want = torch.where(kept, img, torch.tensor(-1.0))
    with_inf = img.clone()
    with_inf[..., 0, 0] = float("inf")  # an unmasked pixel: sends the float image to the select path
    want_inf = want.clone()
    want_inf[..., 0, 0] = float("inf")
    assert torch.equal(apply_mask(img, soft, -1.0, batched=batched), want)
    assert torch.equal(apply_mask(img.int(), soft, -1.0, batched=batched), want.int())
    assert torch.equal(apply_mask(with_inf, soft, -1.0, batched=batched), want_inf)
