"""Tests of MaskSupLoss against hand-computed cases and the reference vectors (README section 1)."""

from __future__ import annotations

import math

import pytest
import torch
from monai.losses import DeepSupervisionLoss, DiceCELoss

from monai_masksup.losses import ConsistencyLoss, LossComponents, MaskSupLoss
from tests.conftest import load_reference, requires_cuda

LOSS_TOL = {"rtol": 1e-5, "atol": 1e-6}
GRAD_TOL = {"rtol": 1e-5, "atol": 1e-7}
LN3 = math.log(3.0)


def _ref() -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in load_reference("masksup_loss.npz").items() if v.dtype.kind != "U"}


def _run(loss: MaskSupLoss, clean: torch.Tensor, masked: torch.Tensor, target: torch.Tensor):
    """Evaluate the loss on leaf copies of the logits and return (value, grad_clean, grad_masked)."""
    clean = clean.clone().requires_grad_(True)
    masked = masked.clone().requires_grad_(True)
    value = loss(clean, masked, target)
    value.backward()
    return value.detach(), clean.grad, masked.grad


# ---- hand-computed binary case, 1x1x2x2 -------------------------------------------------------------
# clean logits [[0, ln3], [-ln3, 0]] -> sigmoid [[.5, .75], [.25, .5]]; masked logits 0 -> sigmoid .5
# target [[1, 1], [0, 0]]
#   seg      = mean(ln2, -ln.75, -ln.75, ln2) = (ln2 + ln(4/3)) / 2 = ln(8/3) / 2
#   context  = ln2
#   task_sim = mean(0, .25^2, .25^2, 0) = 1/32
#   dseg/dz1 = (sigmoid - y) / 4 = [[-.5, -.25], [.25, .5]] / 4
#   dtask/dz1 = 2 (s1 - s2) s1 (1 - s1) / 4 = [[0, 2*.25*.1875/4], [-2*.25*.1875/4, 0]] = +-0.0234375
#   dtask/dz2 = -2 (s1 - s2) s2 (1 - s2) / 4 = [[0, -2*.25*.25/4], [2*.25*.25/4, 0]] = -+0.03125
#   dcontext/dz2 = (.5 - y) / 4 = [[-.5, -.5], [.5, .5]] / 4
HAND_CLEAN = torch.tensor([[[[0.0, LN3], [-LN3, 0.0]]]])
HAND_MASKED = torch.zeros(1, 1, 2, 2)
HAND_TARGET = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
HAND_SEG = math.log(8.0 / 3.0) / 2.0
HAND_CONTEXT = math.log(2.0)
HAND_TASK_SIM = 1.0 / 32.0
HAND_GRAD_CLEAN = torch.tensor([[[[-0.125, -0.0625 + 0.0234375], [0.0625 - 0.0234375, 0.125]]]])
HAND_GRAD_MASKED = torch.tensor([[[[-0.125, -0.125 - 0.03125], [0.125 + 0.03125, 0.125]]]])


def test_binary_hand_computed_value_and_gradients():
    loss = MaskSupLoss()
    value, g_clean, g_masked = _run(loss, HAND_CLEAN, HAND_MASKED, HAND_TARGET)
    assert value.item() == pytest.approx(HAND_SEG + HAND_CONTEXT + HAND_TASK_SIM, rel=1e-6)
    assert loss.last_components["seg"].item() == pytest.approx(HAND_SEG, rel=1e-6)
    assert loss.last_components["context"].item() == pytest.approx(HAND_CONTEXT, rel=1e-6)
    assert loss.last_components["task_sim"].item() == pytest.approx(HAND_TASK_SIM, rel=1e-6)
    torch.testing.assert_close(g_clean, HAND_GRAD_CLEAN, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(g_masked, HAND_GRAD_MASKED, rtol=1e-5, atol=1e-7)


def test_weights_scale_each_hand_computed_term():
    value = MaskSupLoss(weights=(2.0, 0.5, 3.0))(HAND_CLEAN, HAND_MASKED, HAND_TARGET)
    assert value.item() == pytest.approx(2 * HAND_SEG + 0.5 * HAND_CONTEXT + 3 * HAND_TASK_SIM, rel=1e-6)


def test_3d_input_gives_the_hand_computed_means():
    # the 2x2 case repeated along depth: every term is a mean, so the values do not change
    clean, masked, target = (t.unsqueeze(2).repeat(1, 1, 3, 1, 1) for t in (HAND_CLEAN, HAND_MASKED, HAND_TARGET))
    loss = MaskSupLoss()
    value, g_clean, _ = _run(loss, clean, masked, target)
    assert value.item() == pytest.approx(HAND_SEG + HAND_CONTEXT + HAND_TASK_SIM, rel=1e-6)
    torch.testing.assert_close(g_clean, HAND_GRAD_CLEAN.unsqueeze(2).repeat(1, 1, 3, 1, 1) / 3, rtol=1e-5, atol=1e-7)


# ---- hand-computed multi-class case ----------------------------------------------------------------
# pixel 0: clean logits (0, ln3) -> softmax (.25, .75); masked logits (0, 0) -> (.5, .5); class 1
#   CE clean = -ln .75 = ln(4/3); CE masked = ln2; task_sim = (.25^2 + .25^2) / 2 = 1/16
# pixel 1: arbitrary logits, label = ignore_index (255): must change nothing


def test_multiclass_hand_computed_with_ignore_index_excludes_pixels_everywhere():
    clean = torch.tensor([[[[0.0, 5.0]], [[LN3, -3.0]]]])  # (B=1, C=2, H=1, W=2)
    masked = torch.tensor([[[[0.0, -4.0]], [[0.0, 2.0]]]])
    target = torch.tensor([[[[1, 255]]]])
    loss = MaskSupLoss(ignore_index=255)
    value = loss(clean, masked, target)
    assert loss.last_components["seg"].item() == pytest.approx(math.log(4.0 / 3.0), rel=1e-6)
    assert loss.last_components["context"].item() == pytest.approx(math.log(2.0), rel=1e-6)
    assert loss.last_components["task_sim"].item() == pytest.approx(1.0 / 16.0, rel=1e-6)
    assert value.item() == pytest.approx(math.log(4.0 / 3.0) + math.log(2.0) + 1.0 / 16.0, rel=1e-6)


def test_binary_ignore_index_excludes_pixels_from_all_terms():
    # the hand case plus an ignored column whose logits would change every term
    clean = torch.cat([HAND_CLEAN, torch.full((1, 1, 2, 1), 7.0)], dim=3)
    masked = torch.cat([HAND_MASKED, torch.full((1, 1, 2, 1), -7.0)], dim=3)
    target = torch.cat([HAND_TARGET, torch.full((1, 1, 2, 1), 255.0)], dim=3)
    loss = MaskSupLoss(ignore_index=255)
    loss(clean, masked, target)
    assert loss.last_components["seg"].item() == pytest.approx(HAND_SEG, rel=1e-6)
    assert loss.last_components["context"].item() == pytest.approx(HAND_CONTEXT, rel=1e-6)
    assert loss.last_components["task_sim"].item() == pytest.approx(HAND_TASK_SIM, rel=1e-6)


# ---- reference vectors ------------------------------------------------------------------------------


def test_binary_matches_reference_values_and_gradients():
    ref = _ref()
    loss = MaskSupLoss()
    value, g_clean, g_masked = _run(loss, ref["bin_logits_clean"], ref["bin_logits_masked"], ref["bin_target"])
    torch.testing.assert_close(value, ref["bin_loss_total"], **LOSS_TOL)
    torch.testing.assert_close(loss.last_components["seg"], ref["bin_loss_seg"], **LOSS_TOL)
    torch.testing.assert_close(loss.last_components["context"], ref["bin_loss_context"], **LOSS_TOL)
    torch.testing.assert_close(loss.last_components["task_sim"], ref["bin_loss_tasksim"], **LOSS_TOL)
    torch.testing.assert_close(g_clean, ref["bin_grad_clean"], **GRAD_TOL)
    torch.testing.assert_close(g_masked, ref["bin_grad_masked"], **GRAD_TOL)


def test_binary_task_similarity_gradient_reaches_both_branches_like_reference():
    ref = _ref()
    _, g_clean, g_masked = _run(
        MaskSupLoss(weights=(0.0, 0.0, 1.0)), ref["bin_logits_clean"], ref["bin_logits_masked"], ref["bin_target"]
    )
    assert g_clean.abs().sum() > 0 and g_masked.abs().sum() > 0
    torch.testing.assert_close(g_clean, ref["bin_grad_tasksim_clean"], **GRAD_TOL)
    torch.testing.assert_close(g_masked, ref["bin_grad_tasksim_masked"], **GRAD_TOL)


def test_multiclass_matches_plugin_spec_values_and_gradients():
    ref = _ref()
    loss = MaskSupLoss()
    value, g_clean, g_masked = _run(loss, ref["mc_logits_clean"], ref["mc_logits_masked"], ref["mc_target"])
    torch.testing.assert_close(value, ref["mc_spec_loss_total"], **LOSS_TOL)
    torch.testing.assert_close(loss.last_components["seg"], ref["mc_spec_loss_seg"], **LOSS_TOL)
    torch.testing.assert_close(loss.last_components["context"], ref["mc_spec_loss_context"], **LOSS_TOL)
    torch.testing.assert_close(loss.last_components["task_sim"], ref["mc_spec_loss_tasksim"], **LOSS_TOL)
    torch.testing.assert_close(g_clean, ref["mc_spec_grad_clean"], **GRAD_TOL)
    torch.testing.assert_close(g_masked, ref["mc_spec_grad_masked"], **GRAD_TOL)


@pytest.mark.parametrize("form", ["channel", "one_hot"])
def test_multiclass_accepts_channel_and_one_hot_targets(form):
    ref = _ref()
    target = ref["mc_target"].unsqueeze(1)
    if form == "one_hot":
        target = torch.nn.functional.one_hot(ref["mc_target"], 4).permute(0, 3, 1, 2).float()
    value = MaskSupLoss()(ref["mc_logits_clean"], ref["mc_logits_masked"], target)
    torch.testing.assert_close(value, ref["mc_spec_loss_total"], **LOSS_TOL)


def test_reference_argmax_task_similarity_differs_and_has_no_gradient():
    ref = _ref()
    clean = ref["mc_logits_clean"].clone().requires_grad_(True)
    masked = ref["mc_logits_masked"].clone().requires_grad_(True)
    # the NYUDv2 reference form, written here only to show why the plugin deviates from it
    argmax_mse = torch.nn.functional.mse_loss(
        torch.softmax(clean, 1).argmax(1).float(), torch.softmax(masked, 1).argmax(1).float()
    )
    assert not argmax_mse.requires_grad
    torch.testing.assert_close(argmax_mse, ref["mc_ref_nyu_loss_tasksim_argmax"], **LOSS_TOL)
    torch.testing.assert_close(
        ref["mc_ref_nyu_loss_total"],
        ref["mc_ref_nyu_loss_seg"] + ref["mc_ref_nyu_loss_context"] + ref["mc_ref_nyu_loss_tasksim_argmax"],
        **LOSS_TOL,
    )
    loss = MaskSupLoss()
    value = loss(clean, masked, ref["mc_target"])
    assert abs(loss.last_components["task_sim"].item() - argmax_mse.item()) > 0.5
    assert abs(value.item() - ref["mc_ref_nyu_loss_total"].item()) > 0.5
    # the reference gradient is that of the CE terms alone: our loss without task similarity
    _, g_clean, g_masked = _run(
        MaskSupLoss(weights=(1.0, 1.0, 0.0)), ref["mc_logits_clean"], ref["mc_logits_masked"], ref["mc_target"]
    )
    torch.testing.assert_close(g_clean, ref["mc_ref_nyu_grad_clean"], **GRAD_TOL)
    torch.testing.assert_close(g_masked, ref["mc_ref_nyu_grad_masked"], **GRAD_TOL)
    assert not torch.allclose(ref["mc_spec_grad_clean"], ref["mc_ref_nyu_grad_clean"], rtol=1e-5, atol=1e-7)


def test_multiclass_task_similarity_gradient_reaches_both_branches():
    ref = _ref()
    _, g_clean, g_masked = _run(
        MaskSupLoss(weights=(0.0, 0.0, 1.0)), ref["mc_logits_clean"], ref["mc_logits_masked"], ref["mc_target"]
    )
    torch.testing.assert_close(g_clean, ref["mc_spec_grad_clean"] - ref["mc_ref_nyu_grad_clean"], **GRAD_TOL)
    torch.testing.assert_close(g_masked, ref["mc_spec_grad_masked"] - ref["mc_ref_nyu_grad_masked"], **GRAD_TOL)
    assert g_clean.abs().sum() > 0 and g_masked.abs().sum() > 0


# ---- components and MONAI seg_loss ------------------------------------------------------------------


def test_components_are_attached_and_last_components_detached():
    ref = _ref()
    clean = ref["bin_logits_clean"].clone().requires_grad_(True)
    loss = MaskSupLoss(weights=(2.0, 0.5, 3.0))
    terms = loss.components(clean, ref["bin_logits_masked"], ref["bin_target"])
    assert set(terms) == {"seg", "context", "task_sim"}
    assert terms["seg"].requires_grad and terms["task_sim"].requires_grad
    value = loss(clean, ref["bin_logits_masked"], ref["bin_target"])
    assert set(loss.last_components) == {"seg", "context", "task_sim"}
    assert all(not t.requires_grad and t.ndim == 0 for t in loss.last_components.values())
    expected = 2.0 * ref["bin_loss_seg"] + 0.5 * ref["bin_loss_context"] + 3.0 * ref["bin_loss_tasksim"]
    torch.testing.assert_close(value.detach(), expected, **LOSS_TOL)


def test_monai_seg_loss_replaces_cross_entropy_in_multiclass():
    ref = _ref()
    dice_ce = DiceCELoss(to_onehot_y=True, softmax=True)
    loss = MaskSupLoss(seg_loss=dice_ce)
    target = ref["mc_target"].unsqueeze(1)
    value = loss(ref["mc_logits_clean"], ref["mc_logits_masked"], ref["mc_target"])  # (B, H, W) gets a channel
    expected = (
        dice_ce(ref["mc_logits_clean"], target) + dice_ce(ref["mc_logits_masked"], target) + ref["mc_spec_loss_tasksim"]
    )
    torch.testing.assert_close(value, expected, **LOSS_TOL)


def test_monai_seg_loss_replaces_bce_in_binary():
    ref = _ref()
    dice_ce = DiceCELoss(sigmoid=True)
    loss = MaskSupLoss(seg_loss=dice_ce)
    loss(ref["bin_logits_clean"], ref["bin_logits_masked"], ref["bin_target"])
    torch.testing.assert_close(
        loss.last_components["seg"], dice_ce(ref["bin_logits_clean"], ref["bin_target"]), **LOSS_TOL
    )
    torch.testing.assert_close(loss.last_components["task_sim"], ref["bin_loss_tasksim"], **LOSS_TOL)


# ---- loss components protocol --------------------------------------------------------------------------


def test_loss_components_follow_the_protocol_and_give_the_reference_terms():
    ref = _ref()
    loss = MaskSupLoss()
    assert isinstance(loss, LossComponents)
    assert loss.loss_components() == {}
    loss(ref["bin_logits_clean"].clone().requires_grad_(True), ref["bin_logits_masked"], ref["bin_target"])
    components = loss.loss_components()
    assert set(components) == {"seg", "context", "task_sim"}
    assert all(not t.requires_grad and t.ndim == 0 for t in components.values())
    torch.testing.assert_close(components["seg"], ref["bin_loss_seg"], **LOSS_TOL)
    torch.testing.assert_close(components["context"], ref["bin_loss_context"], **LOSS_TOL)
    torch.testing.assert_close(components["task_sim"], ref["bin_loss_tasksim"], **LOSS_TOL)


# ---- task similarity = ConsistencyLoss / number of classes ----------------------------------------------


@pytest.mark.parametrize("prefix,expected,classes", [("bin", "bin_loss_tasksim", 2), ("mc", "mc_spec_loss_tasksim", 4)])
def test_consistency_var_sums_over_classes_and_task_similarity_averages(prefix, expected, classes):
    # the consistency sums the squared differences over the classes (two for one channel), MaskSup's MSE
    # averages them: the consistency is the reference MSE times the class count
    ref = _ref()
    consistency = ConsistencyLoss(detach_target=False)(ref[f"{prefix}_logits_clean"], ref[f"{prefix}_logits_masked"])
    torch.testing.assert_close(consistency, classes * ref[expected], **LOSS_TOL)


# ---- deep supervision ---------------------------------------------------------------------------------


def _deep_outputs(full: torch.Tensor, seed: int) -> list[torch.Tensor]:
    """``full`` followed by two coarser levels of arbitrary logits, as a deep-supervision network returns."""
    generator = torch.Generator().manual_seed(seed)
    batch, channels, height, width = full.shape
    return [full] + [torch.randn(batch, channels, height // f, width // f, generator=generator) for f in (2, 4)]


def test_deep_supervision_lists_use_the_first_output_for_built_in_terms():
    ref = _ref()
    clean = [t.requires_grad_(True) for t in _deep_outputs(ref["bin_logits_clean"].clone(), 1)]
    masked = [t.requires_grad_(True) for t in _deep_outputs(ref["bin_logits_masked"].clone(), 2)]
    loss = MaskSupLoss()
    value = loss(clean, masked, ref["bin_target"])
    torch.testing.assert_close(value.detach(), ref["bin_loss_total"], **LOSS_TOL)
    value.backward()
    torch.testing.assert_close(clean[0].grad, ref["bin_grad_clean"], **GRAD_TOL)
    torch.testing.assert_close(masked[0].grad, ref["bin_grad_masked"], **GRAD_TOL)
    assert all(t.grad is None for t in clean[1:] + masked[1:])


def test_deep_supervision_loss_receives_the_whole_list_as_seg_loss():
    ref = _ref()
    clean = _deep_outputs(ref["bin_logits_clean"], 1)
    masked = _deep_outputs(ref["bin_logits_masked"], 2)
    deep = DeepSupervisionLoss(DiceCELoss(sigmoid=True))
    loss = MaskSupLoss(seg_loss=deep)
    value = loss(clean, masked, ref["bin_target"])
    components = loss.loss_components()
    torch.testing.assert_close(components["seg"], deep(clean, ref["bin_target"]), **LOSS_TOL)
    torch.testing.assert_close(components["context"], deep(masked, ref["bin_target"]), **LOSS_TOL)
    # the coarse levels count: the sum differs from DiceCE on the full resolution alone
    assert abs(components["seg"].item() - DiceCELoss(sigmoid=True)(clean[0], ref["bin_target"]).item()) > 1e-3
    torch.testing.assert_close(components["task_sim"], ref["bin_loss_tasksim"], **LOSS_TOL)
    torch.testing.assert_close(value, components["seg"] + components["context"] + components["task_sim"], **LOSS_TOL)


def test_deep_supervision_multiclass_list_and_tensor_can_be_mixed():
    ref = _ref()
    deep = DeepSupervisionLoss(DiceCELoss(to_onehot_y=True, softmax=True), weight_mode="same")
    clean = _deep_outputs(ref["mc_logits_clean"], 3)
    loss = MaskSupLoss(seg_loss=deep)
    # a float index map: DeepSupervisionLoss resizes the target, which torch cannot do for integer tensors
    target = ref["mc_target"].unsqueeze(1).float()
    loss(clean, ref["mc_logits_masked"], target)
    torch.testing.assert_close(loss.loss_components()["seg"], deep(clean, target), **LOSS_TOL)
    torch.testing.assert_close(loss.loss_components()["context"], deep(ref["mc_logits_masked"], target), **LOSS_TOL)
    torch.testing.assert_close(loss.loss_components()["task_sim"], ref["mc_spec_loss_tasksim"], **LOSS_TOL)


def test_empty_prediction_list_is_rejected():
    with pytest.raises(ValueError, match="pred_clean_logits is an empty list"):
        MaskSupLoss()([], torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))


def test_full_resolution_outputs_of_different_shapes_are_rejected():
    with pytest.raises(ValueError, match="same shape"):
        MaskSupLoss()([torch.zeros(1, 1, 4, 4)], [torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 4, 4)], torch.zeros(1, 1, 4, 4))


# ---- errors -----------------------------------------------------------------------------------------


def test_prediction_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="same shape"):
        MaskSupLoss()(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5), torch.zeros(1, 1, 4, 4))


@pytest.mark.parametrize(
    "channels,target", [(1, torch.zeros(1, 1, 4, 5)), (3, torch.zeros(1, 1, 5, 4, dtype=torch.long))]
)
def test_target_spatial_size_mismatch_is_rejected(channels, target):
    with pytest.raises(ValueError, match="does not match"):
        MaskSupLoss()(torch.zeros(1, channels, 4, 4), torch.zeros(1, channels, 4, 4), target)


@pytest.mark.parametrize("bad_value", [0.5, 255.0, -1.0])
def test_binary_target_outside_zero_one_is_rejected(bad_value):
    target = torch.zeros(1, 1, 2, 2)
    target[0, 0, 0, 0] = bad_value
    with pytest.raises(ValueError, match="binary target must hold only 0 and 1"):
        MaskSupLoss()(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), target)


def test_multiclass_class_index_out_of_range_is_rejected():
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\]"):
        MaskSupLoss()(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2), torch.full((1, 2, 2), 3))


@pytest.mark.parametrize("weights", [(1.0, -0.1, 1.0), (1.0, 1.0), (1.0, float("nan"), 1.0)])
def test_invalid_weights_are_rejected(weights):
    with pytest.raises(ValueError, match="weights"):
        MaskSupLoss(weights=weights)


def test_seg_loss_with_ignore_index_is_rejected():
    with pytest.raises(ValueError, match="ignore_index"):
        MaskSupLoss(seg_loss=DiceCELoss(), ignore_index=255)


def test_multiclass_non_integer_index_is_rejected():
    target = torch.tensor([[[[0.0, 1.5], [2.0, 1.0]]]])
    with pytest.raises(ValueError, match="integer class indices"):
        MaskSupLoss()(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2), target)


def test_multiclass_target_that_is_not_one_hot_is_rejected():
    target = torch.zeros(1, 3, 2, 2)
    target[:, 0] = 1.0
    target[0, 1, 0, 0] = 1.0  # two classes at one pixel
    with pytest.raises(ValueError, match="must be one-hot"):
        MaskSupLoss()(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2), target)


# ---- validate_target ---------------------------------------------------------------------------------


def test_validate_target_false_skips_value_check_and_keeps_the_maths():
    # logits 0 everywhere and a soft target 0.5: BCE = -(.5 ln .5 + .5 ln .5) = ln2 per branch, task_sim 0
    zeros = torch.zeros(1, 1, 2, 2)
    loss = MaskSupLoss(validate_target=False)
    value = loss(zeros, zeros, torch.full((1, 1, 2, 2), 0.5))
    assert loss.last_components["seg"].item() == pytest.approx(math.log(2.0), rel=1e-6)
    assert loss.last_components["context"].item() == pytest.approx(math.log(2.0), rel=1e-6)
    assert loss.last_components["task_sim"].item() == 0.0
    assert value.item() == pytest.approx(2 * math.log(2.0), rel=1e-6)
    # the hand-computed case is unchanged by skipping the check
    value, g_clean, _ = _run(loss, HAND_CLEAN, HAND_MASKED, HAND_TARGET)
    assert value.item() == pytest.approx(HAND_SEG + HAND_CONTEXT + HAND_TASK_SIM, rel=1e-6)
    torch.testing.assert_close(g_clean, HAND_GRAD_CLEAN, rtol=1e-5, atol=1e-7)


def test_validate_target_false_still_checks_shapes():
    with pytest.raises(ValueError, match="does not match"):
        MaskSupLoss(validate_target=False)(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))


@pytest.mark.gpu
@requires_cuda
@pytest.mark.parametrize("channels", [1, 3])
def test_validate_target_false_does_not_synchronise_cuda(channels):
    device = torch.device("cuda")
    clean = torch.randn(2, channels, 8, 8, device=device, requires_grad=True)
    masked = torch.randn(2, channels, 8, 8, device=device, requires_grad=True)
    if channels == 1:
        target = torch.randint(0, 2, (2, 1, 8, 8), device=device).float()
    else:
        target = torch.randint(0, channels, (2, 1, 8, 8), device=device)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        MaskSupLoss(validate_target=False)(clean, masked, target).backward()
        with pytest.raises(RuntimeError, match="synchroniz"):
            MaskSupLoss()(clean, masked, target)  # the default check reads back once per call
    finally:
        torch.cuda.set_sync_debug_mode("default")
