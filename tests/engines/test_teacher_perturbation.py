"""Tests of FlipAffinePerturbation: the inverse restores the original inside the validity mask."""

from __future__ import annotations

import pytest
import torch

from monai_masksup.engines import FlipAffinePerturbation


def _image(batch: int = 4, size: tuple[int, ...] = (10, 7)) -> torch.Tensor:
    return torch.randn(batch, 2, *size, generator=torch.Generator().manual_seed(0))


def test_flips_round_trip_exactly_and_every_pixel_is_valid():
    perturbation = FlipAffinePerturbation(flip_prob=0.5)
    x = _image(8)
    params = perturbation.draw(8, (10, 7), torch.Generator().manual_seed(1))
    perturbed = perturbation.apply(x, params)
    assert torch.equal(perturbation.invert(perturbed, params), x)
    assert torch.equal(perturbation.validity(params, (10, 7)), torch.ones(8, 1, 10, 7))
    # the draw flipped some samples and left others: check one of each by hand
    for b in range(8):
        expected = x[b]
        for axis in range(2):
            if params.flips[b, axis]:
                expected = expected.flip(axis + 1)
        assert torch.equal(perturbed[b], expected)
    assert params.flips.any() and not params.flips.all()


def test_flip_axes_restrict_which_axes_flip_in_3d():
    perturbation = FlipAffinePerturbation(flip_axes=(2,), flip_prob=1.0)
    x = _image(2, (3, 4, 5))
    params = perturbation.draw(2, (3, 4, 5))
    assert params.flips.tolist() == [[False, False, True]] * 2
    assert torch.equal(perturbation.apply(x, params), x.flip(4))


def test_whole_pixel_translation_round_trips_inside_the_validity_mask():
    # translate_range 0 except a hand-set shift of exactly 2 pixels along x (normalised: 2 * 2 / (W - 1))
    perturbation = FlipAffinePerturbation(flip_prob=0.0, translate_range=1e-9, mode="nearest")
    params = perturbation.draw(1, (6, 9))
    params.theta = torch.eye(3)[None].clone()
    params.theta[0, 0, 2] = 4.0 / 8.0
    x = _image(1, (6, 9))
    restored = perturbation.invert(perturbation.apply(x, params), params)
    valid = perturbation.validity(params, (6, 9))
    # the perturbed column c shows the original column c + 2, so the original columns 0 and 1 never reach the
    # teacher: the inverse pulls zeros there
    expected_valid = torch.ones(1, 1, 6, 9)
    expected_valid[..., :2] = 0
    assert torch.equal(valid, expected_valid)
    assert torch.equal(restored * valid, x * valid)


def test_small_affine_restores_a_smooth_image_inside_the_validity_mask():
    perturbation = FlipAffinePerturbation(rotate_range=0.2, scale_range=0.1, translate_range=0.1)
    ramp = (torch.linspace(0, 1, 30)[:, None] * torch.linspace(0, 1, 22)[None]).expand(4, 1, 30, 22)
    params = perturbation.draw(4, (30, 22), torch.Generator().manual_seed(0))
    valid = perturbation.validity(params, (30, 22))
    restored = perturbation.invert(perturbation.apply(ramp, params), params)
    assert 0.5 < valid.mean() < 1.0
    # bilinear twice is exact on a bilinear ramp up to float rounding
    torch.testing.assert_close(restored * valid, ramp * valid, atol=2e-3, rtol=0)


def test_same_seed_draws_the_same_perturbation():
    perturbation = FlipAffinePerturbation(rotate_range=0.1)
    a = perturbation.draw(3, (8, 8), torch.Generator().manual_seed(5))
    b = perturbation.draw(3, (8, 8), torch.Generator().manual_seed(5))
    assert torch.equal(a.flips, b.flips) and torch.equal(a.theta, b.theta)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="flip_prob"):
        FlipAffinePerturbation(flip_prob=1.5)
    with pytest.raises(ValueError, match="scale_range"):
        FlipAffinePerturbation(scale_range=1.0)
    with pytest.raises(ValueError, match="flip_axes"):
        FlipAffinePerturbation(flip_axes=(2,)).draw(1, (4, 4))


def test_3d_affine_restores_a_smooth_volume_inside_the_validity_mask():
    perturbation = FlipAffinePerturbation(rotate_range=0.2, translate_range=0.1)
    axes = [torch.linspace(0, 1, n) for n in (8, 12, 10)]
    ramp = (axes[0][:, None, None] + axes[1][None, :, None] + axes[2][None, None, :]).expand(2, 1, 8, 12, 10)
    params = perturbation.draw(2, (8, 12, 10), torch.Generator().manual_seed(1))
    assert params.theta.shape == (2, 4, 4)
    valid = perturbation.validity(params, (8, 12, 10))
    restored = perturbation.invert(perturbation.apply(ramp, params), params)
    assert 0.3 < valid.mean() < 1.0
    torch.testing.assert_close(restored * valid, ramp * valid, atol=2e-3, rtol=0)
