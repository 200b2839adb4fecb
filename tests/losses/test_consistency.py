"""Tests of ConsistencyLoss against hand-computed cases and the CutMix reference vectors (README section 2)."""

from __future__ import annotations

import math

import pytest
import torch
from monai.data import MetaTensor

from monai_masksup.losses import ConsistencyLoss, LossComponents, mix_with_mask
from tests.conftest import load_reference, requires_cuda

LOSS_TOL = {"rtol": 1e-5, "atol": 1e-6}
VARIANTS = ["var", "bce", "kld", "logits_var", "logits_smoothl1"]


def _ref() -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in load_reference("cutmix_consistency.npz").items() if v.dtype.kind != "U"}


def _threshold(ref: dict[str, torch.Tensor]) -> float:
    return float(ref["conf_thresh"])


# ---- hand-computed two-class case, B=1, C=2, H=1, W=2 -----------------------------------------------
# pixel 0: student logits (0, ln3) -> p_s (.25, .75); teacher (0, 0) -> p_t (.5, .5), max .5
#   var = .25^2 + .25^2 = .125
# pixel 1: student (0, 0) -> (.5, .5); teacher (0, ln99) -> (.01, .99), max .99
#   var = .49^2 + .49^2 = .4802
# threshold .97: confident = [0, 1], proportion 1/2
LN3, LN99 = math.log(3.0), math.log(99.0)
HAND_STUDENT = torch.tensor([[[[0.0, 0.0]], [[LN3, 0.0]]]])
HAND_TEACHER = torch.tensor([[[[0.0, 0.0]], [[0.0, LN99]]]])
VAR0, VAR1 = 0.125, 0.4802


def test_var_without_threshold_is_the_mean_over_pixels_of_the_channel_sum():
    value = ConsistencyLoss()(HAND_STUDENT, HAND_TEACHER)
    assert value.item() == pytest.approx((VAR0 + VAR1) / 2, rel=1e-6)


def test_confidence_scales_by_the_proportion_of_confident_pixels_by_default():
    loss = ConsistencyLoss(confidence_threshold=0.97)
    value = loss(HAND_STUDENT, HAND_TEACHER)
    assert value.item() == pytest.approx((VAR0 + VAR1) / 2 * 0.5, rel=1e-6)
    assert loss.loss_components()["confidence_rate"].item() == 0.5


def test_confidence_per_pixel_gates_each_pixel():
    value = ConsistencyLoss(confidence_threshold=0.97, confidence_per_pixel=True)(HAND_STUDENT, HAND_TEACHER)
    assert value.item() == pytest.approx((0.0 + VAR1) / 2, rel=1e-6)


def test_mask_weights_pixels_and_the_mean_is_not_divided_by_the_mask_sum():
    mask = torch.tensor([[[[1.0, 0.0]]]])
    value = ConsistencyLoss()(HAND_STUDENT, HAND_TEACHER, mask)
    assert value.item() == pytest.approx(VAR0 / 2, rel=1e-6)


def test_confidence_proportion_counts_masked_out_pixels_too():
    # pixel 1 is the only confident one; masking pixel 0 out leaves the proportion at 1/2, not 1
    mask = torch.tensor([[[[0.0, 1.0]]]])
    loss = ConsistencyLoss(confidence_threshold=0.97)
    value = loss(HAND_STUDENT, HAND_TEACHER, mask)
    assert value.item() == pytest.approx(VAR1 * 0.5 / 2, rel=1e-6)
    assert loss.loss_components()["confidence_rate"].item() == 0.5


def test_reduction_none_gives_the_weighted_map_and_sum_its_sum():
    mask = torch.tensor([[[[1.0, 0.5]]]])
    loss_map = ConsistencyLoss(reduction="none")(HAND_STUDENT, HAND_TEACHER, mask)
    assert loss_map.shape == (1, 1, 1, 2)
    torch.testing.assert_close(loss_map, torch.tensor([[[[VAR0, VAR1 * 0.5]]]]), **LOSS_TOL)
    total = ConsistencyLoss(reduction="sum")(HAND_STUDENT, HAND_TEACHER, mask)
    assert total.item() == pytest.approx(VAR0 + VAR1 * 0.5, rel=1e-6)


def test_3d_input_gives_the_hand_computed_mean_and_a_3d_map():
    student, teacher = (t.unsqueeze(2).repeat(1, 1, 3, 1, 1) for t in (HAND_STUDENT, HAND_TEACHER))
    assert ConsistencyLoss()(student, teacher).item() == pytest.approx((VAR0 + VAR1) / 2, rel=1e-6)
    assert ConsistencyLoss(reduction="none")(student, teacher).shape == (1, 1, 3, 1, 2)


# ---- binary: one channel is the two-class softmax on [0, z] ------------------------------------------


def test_binary_var_is_twice_the_squared_sigmoid_difference():
    # sigmoid(ln3) = .75, sigmoid(0) = .5: two-class sum of squares 2 * .25^2 = .125
    value = ConsistencyLoss()(torch.tensor([[[[LN3]]]]), torch.zeros(1, 1, 1, 1))
    assert value.item() == pytest.approx(0.125, rel=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("per_pixel", [False, True])
def test_one_channel_equals_the_two_class_softmax_on_zero_and_z(variant, per_pixel):
    generator = torch.Generator().manual_seed(0)
    student = 3 * torch.randn(2, 1, 5, 4, generator=generator)
    teacher = 3 * torch.randn(2, 1, 5, 4, generator=generator)
    two_class = (torch.cat([torch.zeros_like(z), z], dim=1) for z in (student, teacher))
    options = {"variant": variant, "confidence_threshold": 0.9, "confidence_per_pixel": per_pixel}
    binary, reference = ConsistencyLoss(**options), ConsistencyLoss(**options)
    torch.testing.assert_close(binary(student, teacher), reference(*two_class), rtol=1e-6, atol=1e-7)
    assert binary.loss_components()["confidence_rate"] == reference.loss_components()["confidence_rate"]


def test_binary_confidence_is_the_larger_of_sigmoid_and_its_complement():
    # sigmoid(-4) = .018 -> confidence .982 >= .97; sigmoid(1) = .73 -> not confident
    loss = ConsistencyLoss(confidence_threshold=0.97)
    loss(torch.zeros(1, 1, 1, 2), torch.tensor([[[[-4.0, 1.0]]]]))
    assert loss.loss_components()["confidence_rate"].item() == 0.5


# ---- gradient through the target ---------------------------------------------------------------------
# binary, one pixel: var = 2 (s - t)^2 with s = sigmoid(ln3) = .75, t = sigmoid(0) = .5
#   d/dz_s = 4 (s - t) s (1 - s) = 4 * .25 * .1875 = .1875
#   d/dz_t = -4 (s - t) t (1 - t) = -4 * .25 * .25 = -.25


@pytest.mark.parametrize("detach_target", [True, False])
def test_detach_target_controls_the_gradient_through_the_target(detach_target):
    student = torch.tensor([[[[LN3]]]], requires_grad=True)
    teacher = torch.zeros(1, 1, 1, 1, requires_grad=True)
    ConsistencyLoss(detach_target=detach_target)(student, teacher).backward()
    assert student.grad.item() == pytest.approx(0.1875, rel=1e-6)
    if detach_target:
        assert teacher.grad is None
    else:
        assert teacher.grad.item() == pytest.approx(-0.25, rel=1e-6)


# ---- reference vectors: mix (CutMix) mode, 2b ----------------------------------------------------------


def test_teacher_logits_and_student_image_mix_like_reference():
    ref = _ref()
    mixed_logits = mix_with_mask(ref["logits_tea_a"], ref["logits_tea_b"], ref["mix_mask"])
    torch.testing.assert_close(mixed_logits, ref["mix_logits_tea"], rtol=0, atol=1e-6)
    mixed_image = mix_with_mask(ref["img_a"], ref["img_b"], ref["mix_mask"])
    torch.testing.assert_close(mixed_image, ref["mix_student_image"], rtol=0, atol=1e-6)


def test_mix_per_pixel_var_map_matches_reference():
    ref = _ref()
    loss_map = ConsistencyLoss(reduction="none")(ref["logits_stu"], ref["mix_logits_tea"])
    torch.testing.assert_close(loss_map, ref["mix_cons_map_var"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_mix_variants_with_confidence_proportion_match_reference(variant):
    ref = _ref()
    teacher = mix_with_mask(ref["logits_tea_a"], ref["logits_tea_b"], ref["mix_mask"])
    loss_mask = mix_with_mask(ref["valid_ones"], ref["valid_ones"], ref["mix_mask"])
    loss = ConsistencyLoss(variant=variant, confidence_threshold=_threshold(ref))
    value = loss(ref["logits_stu"], teacher, loss_mask)
    tol = {"rtol": 1e-5, "atol": 1e-5} if variant == "logits_var" else LOSS_TOL
    torch.testing.assert_close(value, ref[f"mix_loss_{variant}_conf_mean"], **tol)
    assert loss.loss_components()["confidence_rate"] == ref["mix_conf_rate"]
    assert loss.loss_components()["confidence_rate"] == ref["mix_conf_mask_scalar"]


def test_mix_per_pixel_confidence_and_no_threshold_match_reference():
    ref = _ref()
    threshold = _threshold(ref)
    per_pixel = ConsistencyLoss(confidence_threshold=threshold, confidence_per_pixel=True)
    value = per_pixel(ref["logits_stu"], ref["mix_logits_tea"], ref["valid_ones"])
    torch.testing.assert_close(value, ref["mix_loss_var_conf_pixel"], **LOSS_TOL)
    value = ConsistencyLoss()(ref["logits_stu"], ref["mix_logits_tea"], ref["valid_ones"])
    torch.testing.assert_close(value, ref["mix_loss_var_noconf"], **LOSS_TOL)


# ---- reference vectors: mix mode with a validity map, 2c ------------------------------------------------


def test_mix_with_validity_map_matches_reference_in_both_confidence_modes():
    ref = _ref()
    loss_mask = mix_with_mask(ref["valid_ones"], ref["valid_b_padded"], ref["mix_mask"])
    assert torch.equal(loss_mask, ref["mixvalid_loss_mask_before_conf"])
    teacher = mix_with_mask(ref["logits_tea_a"], ref["logits_tea_b"], ref["mix_mask"])
    threshold = _threshold(ref)
    value = ConsistencyLoss(confidence_threshold=threshold)(ref["logits_stu"], teacher, loss_mask)
    torch.testing.assert_close(value, ref["mixvalid_loss_var_conf_mean"], **LOSS_TOL)
    gated = ConsistencyLoss(confidence_threshold=threshold, confidence_per_pixel=True)
    torch.testing.assert_close(gated(ref["logits_stu"], teacher, loss_mask), ref["mixvalid_loss_var_conf_pixel"], **LOSS_TOL)


# ---- reference vectors: cut (Cutout) mode, 2d ----------------------------------------------------------


def test_cut_mode_with_its_mask_matches_reference():
    ref = _ref()
    loss_mask = ref["cut_mask"] * ref["valid_ones"]
    assert torch.equal(loss_mask, ref["cut_loss_mask_before_conf"])
    threshold = _threshold(ref)
    proportion = ConsistencyLoss(confidence_threshold=threshold)
    torch.testing.assert_close(
        proportion(ref["logits_stu"], ref["logits_tea_a"], loss_mask), ref["cut_loss_var_conf_mean"], **LOSS_TOL
    )
    assert proportion.loss_components()["confidence_rate"] == ref["cut_conf_rate"]
    gated = ConsistencyLoss(confidence_threshold=threshold, confidence_per_pixel=True)
    torch.testing.assert_close(
        gated(ref["logits_stu"], ref["logits_tea_a"], loss_mask), ref["cut_loss_var_conf_pixel"], **LOSS_TOL
    )
    torch.testing.assert_close(
        ConsistencyLoss()(ref["logits_stu"], ref["logits_tea_a"], loss_mask), ref["cut_loss_var_noconf"], **LOSS_TOL
    )


# ---- loss components ---------------------------------------------------------------------------------


def test_loss_components_follow_the_protocol_and_hold_the_last_values():
    loss = ConsistencyLoss(confidence_threshold=0.97)
    assert isinstance(loss, LossComponents)
    assert loss.loss_components() == {}
    student = HAND_STUDENT.clone().requires_grad_(True)
    value = loss(student, HAND_TEACHER)
    components = loss.loss_components()
    assert set(components) == {"consistency", "confidence_rate"}
    assert all(not t.requires_grad and t.ndim == 0 for t in components.values())
    assert components["consistency"].item() == pytest.approx(value.item(), rel=1e-6)
    assert components["confidence_rate"].item() == 0.5


def test_loss_components_without_threshold_have_no_confidence_rate():
    loss = ConsistencyLoss()
    loss(HAND_STUDENT, HAND_TEACHER)
    assert set(loss.loss_components()) == {"consistency"}


def test_metatensor_logits_give_a_plain_tensor():
    value = ConsistencyLoss()(MetaTensor(HAND_STUDENT), MetaTensor(HAND_TEACHER))
    assert type(value) is torch.Tensor
    assert value.item() == pytest.approx((VAR0 + VAR1) / 2, rel=1e-6)


# ---- errors ----------------------------------------------------------------------------------------------


def test_input_target_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="same shape"):
        ConsistencyLoss()(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 4))


def test_logits_without_spatial_dims_are_rejected():
    with pytest.raises(ValueError, match="at least one spatial dim"):
        ConsistencyLoss()(torch.zeros(2, 3), torch.zeros(2, 3))


@pytest.mark.parametrize("mask_shape", [(1, 3, 4, 4), (2, 1, 4, 4), (1, 1, 4, 5), (1, 4, 4)])
def test_mask_that_is_not_b1_spatial_is_rejected(mask_shape):
    with pytest.raises(ValueError, match=r"mask must be \(B, 1, \*spatial\)"):
        ConsistencyLoss()(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), torch.ones(mask_shape))


def test_integer_target_is_rejected_as_not_logits():
    with pytest.raises(TypeError, match="target must hold floating-point logits"):
        ConsistencyLoss()(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4, dtype=torch.long))


@pytest.mark.parametrize(
    "kwargs,match",
    [({"variant": "mse"}, "variant"), ({"confidence_threshold": 1.5}, "confidence_threshold"), ({"reduction": "max"}, "max")],
)
def test_invalid_options_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConsistencyLoss(**kwargs)


@pytest.mark.gpu
@requires_cuda
@pytest.mark.parametrize("channels", [1, 3])
def test_consistency_does_not_synchronise_cuda(channels):
    # the mean teacher evaluates it every step: no value may be read back to the host
    device = torch.device("cuda")
    student = torch.randn(2, channels, 8, 8, device=device, requires_grad=True)
    teacher = torch.randn(2, channels, 8, 8, device=device)
    mask = torch.randint(0, 2, (2, 1, 8, 8), device=device).float()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for per_pixel in (False, True):
            loss = ConsistencyLoss(confidence_threshold=0.5, confidence_per_pixel=per_pixel)
            loss(student, teacher, mask).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
