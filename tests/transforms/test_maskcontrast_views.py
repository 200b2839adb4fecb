"""Tests of MaskContrastViewsd: the salient fractions of both views, the fallback and the seeding."""

from __future__ import annotations

import pytest
import torch
from monai.transforms import Compose, RandFlipd, RandSpatialCropd

from monai_masksup.transforms import MaskContrastViewsd, salient_fraction


def _sample(object_size: int = 12) -> dict:
    image = torch.rand(3, 32, 32)
    label = torch.zeros(1, 32, 32)
    label[:, :object_size, :object_size] = 1  # an object in one corner: half of the 16x16 crops miss it
    return {"image": image, "label": label}


def _views(max_tries: int = 30) -> MaskContrastViewsd:
    crop = Compose(
        [
            RandSpatialCropd(["image", "label"], roi_size=(16, 16), random_size=False),
            RandFlipd(["image", "label"], prob=0.5, spatial_axis=0),
        ]
    )
    return MaskContrastViewsd(["image", "label"], mask_key="label", view_transform=crop, max_tries=max_tries)


def test_both_views_have_salient_fractions_inside_the_range():
    views = _views().set_random_state(0)
    for _ in range(20):
        out = views(_sample())
        for key in ("label", "key_label"):
            assert 0.01 < salient_fraction(out[key]) < 0.99
        assert out["image"].shape == out["key_image"].shape == (3, 16, 16)
    assert views.fallbacks == 0


def test_single_draws_would_often_miss_the_range():
    # the same crops without re-drawing: a pair is accepted with probability 1/4, so the fallback shows
    views = _views(max_tries=1).set_random_state(0)
    for _ in range(20):
        views(_sample())
    assert views.fallbacks > 0


def test_degenerate_proposal_falls_back_to_the_unaugmented_sample():
    views = _views(max_tries=3).set_random_state(0)
    sample = _sample(object_size=0)  # an empty label: no view can be accepted
    out = views(sample)
    assert views.fallbacks == 1
    for key in ("image", "label"):
        assert torch.equal(out[key], sample[key]) and torch.equal(out["key_" + key], sample[key])


def test_seed_reproduces_the_views():
    sample = _sample()
    first = _views().set_random_state(3)(sample)
    second = _views().set_random_state(3)(sample)
    for key in ("image", "label", "key_image", "key_label"):
        assert torch.equal(first[key], second[key])


def test_views_are_drawn_independently():
    views = _views().set_random_state(1)
    sample = _sample()
    assert any(not torch.equal(out["image"], out["key_image"]) for out in (views(sample) for _ in range(5)))


def test_mask_key_must_be_among_keys():
    with pytest.raises(ValueError, match="mask_key"):
        MaskContrastViewsd(["image"], mask_key="label", view_transform=lambda d: d)
