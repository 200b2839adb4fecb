"""Tests of the RandHoleMask / RandHoleMaskd transforms (polarity, types, keys, seeds, errors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_masksup.transforms import HoleMaskGenerator, RandHoleMask, RandHoleMaskd
from tests.conftest import requires_cuda


def _image(shape=(3, 64, 48), seed=0) -> np.ndarray:
    # Values in [1, 2): a fill value of 0 or -5 can only come from the mask.
    return (1.0 + np.random.default_rng(seed).random(shape)).astype(np.float32)


@pytest.mark.parametrize("shape", [(3, 64, 48), (2, 24, 20, 16)])
def test_holes_take_fill_value_in_every_channel_and_other_pixels_are_unchanged(shape):
    img = _image(shape)
    transform = RandHoleMask(coverage=(0.2, 0.3), fill_value=-5.0, return_mask=True)
    transform.set_random_state(0)
    out, mask = transform(img)
    assert mask.shape == (1, *shape[1:])
    hole = mask[0] == 1
    assert 0.2 < hole.mean() <= 0.3
    for c in range(shape[0]):
        assert np.all(out[c][hole] == -5.0)
        np.testing.assert_array_equal(out[c][~hole], img[c][~hole])
    np.testing.assert_array_equal(transform.last_mask, mask)


def test_numpy_in_gives_numpy_out_and_input_is_not_modified():
    img = _image()
    before = img.copy()
    out = RandHoleMask()(img)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == img.shape
    np.testing.assert_array_equal(img, before)


def test_torch_in_gives_torch_out():
    img = torch.from_numpy(_image())
    out = RandHoleMask()(img)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == img.shape


def test_metatensor_keeps_its_meta_data():
    img = MetaTensor(torch.from_numpy(_image()), meta={"filename_or_obj": "case_01.png"})
    transform = RandHoleMask()
    out = transform(img)
    assert isinstance(out, MetaTensor)
    assert out.meta["filename_or_obj"] == "case_01.png"
    assert isinstance(transform.last_mask, MetaTensor)


def test_set_random_state_reproduces_the_mask():
    img = _image()
    a = RandHoleMask().set_random_state(5)(img)
    b = RandHoleMask().set_random_state(5)(img)
    c = RandHoleMask().set_random_state(6)(img)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_prob_zero_returns_the_image_and_an_empty_mask():
    img = _image()
    transform = RandHoleMask(prob=0.0, return_mask=True)
    out, mask = transform(img)
    np.testing.assert_array_equal(out, img)
    assert mask.shape == (1, *img.shape[1:]) and mask.sum() == 0


def test_raw_coverage_and_custom_generator_are_accepted():
    generator = HoleMaskGenerator(coverage="low")
    transform = RandHoleMask(mask_generator=generator, return_mask=True)
    _, mask = transform(_image((1, 128, 128)))
    assert 0.01 < mask.mean() <= 0.1


@pytest.mark.parametrize("shape", [(64, 48), (1, 2, 8, 8, 8), (5,)])
def test_wrong_rank_input_raises_with_its_shape(shape):
    with pytest.raises(ValueError, match=re_escape_shape(shape)):
        RandHoleMask()(np.zeros(shape, np.float32))


def re_escape_shape(shape) -> str:
    return str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")


def test_dict_writes_masked_copy_and_mask_and_leaves_original_unchanged():
    img = torch.from_numpy(_image())
    label = torch.ones(1, 64, 48)
    data = {"image": img, "label": label}
    transform = RandHoleMaskd(keys="image", coverage="high").set_random_state(3)
    out = transform(data)
    assert set(out) == {"image", "label", "image_masked", "hole_mask"}
    assert out["image"] is img and torch.equal(img, torch.from_numpy(_image()))
    assert out["label"] is label
    hole = out["hole_mask"][0] == 1
    assert 0.5 < hole.float().mean() <= 0.6
    assert torch.all(out["image_masked"][:, hole] == 0)
    assert torch.equal(out["image_masked"][:, ~hole], img[:, ~hole])


def test_dict_with_several_keys_uses_one_mask_and_mask_key_none_skips_it():
    a, b = _image(seed=1), _image(seed=2)
    transform = RandHoleMaskd(keys=("a", "b"), masked_key=("a_masked", "b_masked"), mask_key=None)
    out = transform({"a": a, "b": b})
    assert "hole_mask" not in out
    np.testing.assert_array_equal(out["a_masked"] == 0, out["b_masked"] == 0)
    assert (out["a_masked"] == 0).any()


def test_dict_matches_array_transform_under_the_same_seed():
    img = _image()
    array = RandHoleMask(coverage="low").set_random_state(9)(img)
    dictionary = RandHoleMaskd(coverage="low").set_random_state(9)({"image": img})
    np.testing.assert_array_equal(array, dictionary["image_masked"])


def test_dict_masked_key_count_must_match_keys():
    with pytest.raises(ValueError, match="masked_key"):
        RandHoleMaskd(keys=("a", "b"), masked_key="a_masked")


def test_dict_wrong_rank_input_raises_with_its_shape():
    with pytest.raises(ValueError, match=r"\(64, 48\)"):
        RandHoleMaskd()({"image": np.zeros((64, 48), np.float32)})


@requires_cuda
@pytest.mark.gpu
def test_cuda_tensor_is_masked_on_its_device():
    img = torch.from_numpy(_image()).cuda()
    transform = RandHoleMask(return_mask=True)
    out, mask = transform(img)
    assert out.device.type == "cuda" and mask.device.type == "cuda"
    assert 0.5 < mask.mean().item() <= 0.6


def _masks_of(transform: RandHoleMask, images) -> list[torch.Tensor]:
    out = []
    for img in images:
        transform(img)
        out.append(torch.as_tensor(transform.last_mask))
    return out


def test_draw_batch_hands_out_one_draw_of_the_generator_in_turn():
    img = _image((1, 40, 36))
    transform = RandHoleMask(coverage="high", draw_batch=4).set_random_state(7)
    got = _masks_of(transform, [img] * 6)
    # the transform's random state: the prob draw, then the seed of a draw of 4 masks (then prob draws only)
    state = np.random.RandomState(7)
    state.rand()
    seed = int(state.randint(0, 2**31 - 1))
    want = HoleMaskGenerator("high").gen(4, (40, 36), generator=torch.Generator().manual_seed(seed))
    for k in range(4):
        assert torch.equal(got[k], want[k])
        assert 0.5 < got[k].mean() <= 0.6
        assert got[k].untyped_storage().nbytes() == got[k].numel() * 4  # not a view of the whole draw
    assert not any(torch.equal(got[4], w) for w in want)  # the fifth mask starts a new draw
    # same seed, same masks; set_random_state drops the masks drawn ahead
    again = RandHoleMask(coverage="high", draw_batch=4).set_random_state(7)
    assert all(torch.equal(a, b) for a, b in zip(_masks_of(again, [img] * 6), got))
    transform.set_random_state(7)
    assert torch.equal(_masks_of(transform, [img])[0], got[0])


def test_draw_batch_draws_anew_when_the_image_size_changes():
    small, large = _image((1, 32, 32)), _image((1, 40, 24))
    transform = RandHoleMask(coverage="low", draw_batch=3).set_random_state(2)
    first, other, back = _masks_of(transform, [small, large, small])
    assert first.shape == back.shape == (1, 32, 32) and other.shape == (1, 40, 24)
    reference = _masks_of(RandHoleMask(coverage="low", draw_batch=3).set_random_state(2), [small, small])
    assert torch.equal(first, reference[0])
    assert not torch.equal(back, reference[1])  # the masks kept for 32 x 32 were dropped, not reused


def test_draw_batch_dict_matches_array_and_default_draws_one_mask_per_call():
    img = _image()
    array = RandHoleMask(coverage="low", draw_batch=3).set_random_state(9)
    dictionary = RandHoleMaskd(coverage="low", draw_batch=3).set_random_state(9)
    for _ in range(4):
        np.testing.assert_array_equal(array(img), dictionary({"image": img})["image_masked"])
    # draw_batch=1: every call seeds its own draw of one mask, as before the option existed
    single = RandHoleMask(coverage="low").set_random_state(9)
    state = np.random.RandomState(9)
    for mask in _masks_of(single, [img] * 2):
        state.rand()
        seed = int(state.randint(0, 2**31 - 1))
        generator = torch.Generator().manual_seed(seed)
        assert torch.equal(mask, HoleMaskGenerator("low").gen(1, img.shape[1:], generator=generator)[0])
    with pytest.raises(ValueError, match="draw_batch"):
        RandHoleMask(draw_batch=0)


def test_dict_not_applied_writes_an_unchanged_copy_and_an_empty_mask():
    img = torch.from_numpy(_image())
    out = RandHoleMaskd(prob=0.0)({"image": img})
    assert out["image_masked"] is not img and torch.equal(out["image_masked"], img)
    assert out["hole_mask"].shape == (1, 64, 48) and out["hole_mask"].dtype == torch.float32
    assert not out["hole_mask"].any()


def test_dict_with_prob_draws_apply_or_not_as_the_array_transform_under_the_same_seed():
    img = _image((1, 32, 32))
    array = RandHoleMask(coverage="low", prob=0.5, return_mask=True).set_random_state(1)
    dictionary = RandHoleMaskd(coverage="low", prob=0.5).set_random_state(1)
    applied = []
    for _ in range(8):
        want, mask = array(img)
        got = dictionary({"image": img})
        np.testing.assert_array_equal(got["image_masked"], want)
        np.testing.assert_array_equal(got["hole_mask"], mask)
        applied.append(bool(mask.any()))
    assert set(applied) == {True, False}
