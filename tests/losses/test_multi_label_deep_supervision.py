"""Tests of MultiLabelDeepSupervisionLoss against the released code's vectors (README section 3) and hand-made
labels."""

from __future__ import annotations

import math

import pytest
import torch
from monai.networks.nets import SegResNetDS

from monai_masksup.losses import LossComponents, MultiLabelDeepSupervisionLoss, multi_label_targets
from tests.conftest import load_reference

LOSS_TOL = {"rtol": 1e-5, "atol": 1e-6}
GRAD_TOL = {"rtol": 1e-5, "atol": 1e-7}
CASES = ("main", "odd", "oddrect")
LN2 = math.log(2.0)


def _case(name: str) -> dict[str, torch.Tensor]:
    ref = load_reference("mlds_loss.npz")
    return {k[len(name) + 1 :]: torch.from_numpy(v) for k, v in ref.items() if k.startswith(name + "_")}


def _levels(case: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    return [case[f"logits_l{s}"].clone().requires_grad_(True) for s in range(5)]


@pytest.mark.parametrize("name", CASES)
def test_targets_equal_the_reference_max_pooled_multi_hot(name):
    case = _case(name)
    sizes = [tuple(int(v) for v in s) for s in case["level_shapes"]]
    targets = multi_label_targets(case["target"], 4, sizes)
    for s, (multi_hot, counted) in enumerate(targets):
        assert counted is None
        assert torch.equal(multi_hot, case[f"target_l{s}"]), f"level {s}"


@pytest.mark.parametrize("name", CASES)
def test_released_code_form_matches_reference_total_levels_and_gradients(name):
    case = _case(name)
    levels = _levels(case)
    loss = MultiLabelDeepSupervisionLoss(level_reduction="sum", reduction="sum")
    total = loss(levels, case["target"])
    total.backward()
    torch.testing.assert_close(total.detach(), case["loss_total"], **LOSS_TOL)
    per_level = torch.stack([loss.loss_components()[f"level_{s}"] for s in range(5)])
    torch.testing.assert_close(per_level, case["loss_per_level"], **LOSS_TOL)
    for s, z in enumerate(levels):
        torch.testing.assert_close(z.grad, case[f"grad_l{s}"], **GRAD_TOL)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize(
    "level_reduction, reduction, key",
    [
        ("sum", "mean", "variant_mean_batch"),
        ("mean", "sum", "variant_mean_levels"),
        ("mean", "mean", "variant_mean_batch_mean_levels"),
    ],
)
def test_plugin_variants_match_reference_vectors(name, level_reduction, reduction, key):
    case = _case(name)
    loss = MultiLabelDeepSupervisionLoss(level_reduction=level_reduction, reduction=reduction)
    torch.testing.assert_close(loss(_levels(case), case["target"]).detach(), case[key], **LOSS_TOL)


@pytest.mark.parametrize("name", CASES)
def test_reduction_none_gives_per_sample_sums_over_levels(name):
    case = _case(name)
    loss = MultiLabelDeepSupervisionLoss(level_reduction="sum", reduction="none")
    per_sample = loss(_levels(case), case["target"]).detach()
    torch.testing.assert_close(per_sample, case["loss_per_level_per_sample"].sum(0), **LOSS_TOL)


def test_default_is_mean_over_levels_and_batch_and_a_loss_components():
    case = _case("main")
    loss = MultiLabelDeepSupervisionLoss()
    assert isinstance(loss, LossComponents)
    assert loss.loss_components() == {}
    value = loss(_levels(case), case["target"][:, None])  # channel dim accepted
    torch.testing.assert_close(value.detach(), case["variant_mean_batch_mean_levels"], **LOSS_TOL)
    assert sorted(loss.loss_components()) == [f"level_{s}" for s in range(5)]


def test_level_order_does_not_change_the_value_but_names_the_components():
    case = _case("odd")
    loss = MultiLabelDeepSupervisionLoss(level_reduction="sum", reduction="sum")
    forward = loss(_levels(case), case["target"]).detach()
    backward = loss(_levels(case)[::-1], case["target"]).detach()
    torch.testing.assert_close(forward, backward, **LOSS_TOL)
    torch.testing.assert_close(loss.loss_components()["level_0"], case["loss_per_level"][4], **LOSS_TOL)


def test_weights_scale_each_level_in_input_order():
    case = _case("main")
    loss = MultiLabelDeepSupervisionLoss(weights=[0, 0, 0, 0, 2.0], level_reduction="sum", reduction="sum")
    torch.testing.assert_close(loss(_levels(case), case["target"]).detach(), 2 * case["loss_per_level"][4], **LOSS_TOL)


# ---- hand-made labels -------------------------------------------------------------------------------------------
# 3x3 label, classes 0..2:    adaptive 2x2 windows are rows/cols [0,2) and [1,3) (they overlap at index 1)
#   0 0 1                     cell (0,0) = rows 0-1, cols 0-1 = {0, 2}      cell (0,1) = rows 0-1, cols 1-2 = {0, 1, 2}
#   0 2 0                     cell (1,0) = rows 1-2, cols 0-1 = {0, 2}      cell (1,1) = rows 1-2, cols 1-2 = {0, 2}
#   0 0 0
ODD_LABEL = torch.tensor([[[0, 0, 1], [0, 2, 0], [0, 0, 0]]])


def test_odd_size_windows_overlap_as_adaptive_max_pooling():
    (multi_hot, _), (bottleneck, _) = multi_label_targets(ODD_LABEL, 3, [(2, 2), (1, 1)])
    expected = torch.tensor([[[1, 1], [1, 1]], [[0, 1], [0, 0]], [[1, 1], [1, 1]]], dtype=torch.float32)
    assert torch.equal(multi_hot[0], expected)
    assert torch.equal(bottleneck[0, :, 0, 0], torch.ones(3))


def test_full_size_level_is_the_one_hot_label():
    (multi_hot, _), = multi_label_targets(ODD_LABEL, 3, [(3, 3)])
    assert torch.equal(multi_hot.argmax(1), ODD_LABEL)
    assert torch.equal(multi_hot.sum(1), torch.ones(1, 3, 3))


def test_ignored_pixels_get_no_class_and_uncertain_negatives_do_not_count():
    # 9 = unannotated; cell (0,1) covers the 9 at (0,2) and sees {0, 2}; class 1 may hide under the 9
    label = torch.tensor([[[0, 0, 9], [0, 2, 0], [0, 0, 0]]])
    (multi_hot, counted), = multi_label_targets(label, 3, [(2, 2)], ignore_index=9)
    assert torch.equal(multi_hot[0, 1], torch.zeros(2, 2))
    assert torch.equal(multi_hot[0, 0], torch.ones(2, 2))
    # cell (0,1): positives 0 and 2 count, the negative of class 1 does not; all other cells count fully
    expected_counted = torch.ones(3, 2, 2)
    expected_counted[1, 0, 1] = 0
    assert torch.equal(counted[0], expected_counted)


def test_ignored_loss_is_the_mean_over_counted_elements():
    # logits 0 everywhere: every counted element costs ln2, so the mean is ln2 whatever is counted;
    # logits +-30 on the uncounted element would change an unmasked mean by ~30/12
    label = torch.tensor([[[0, 0, 9], [0, 2, 0], [0, 0, 0]]])
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 1, 0, 1] = 30.0
    loss = MultiLabelDeepSupervisionLoss(ignore_index=9)
    assert loss([logits], label).item() == pytest.approx(LN2, rel=1e-6)


def test_fully_ignored_sample_contributes_zero_with_gradient_path():
    label = torch.full((2, 4, 4), 9)
    label[1] = 1
    logits = torch.zeros(2, 2, 2, 2, requires_grad=True)
    loss = MultiLabelDeepSupervisionLoss(ignore_index=9, reduction="none")
    per_sample = loss([logits], label)
    assert per_sample[0].item() == 0.0
    assert per_sample[1].item() == pytest.approx(LN2, rel=1e-6)
    per_sample.sum().backward()
    assert torch.equal(logits.grad[0], torch.zeros(2, 2, 2))


def test_zero_logits_cost_ln2_per_element_in_every_reduction():
    label = torch.randint(0, 3, (2, 8, 8), generator=torch.Generator().manual_seed(0))
    levels = [torch.zeros(2, 3, 2, 2), torch.zeros(2, 3, 4, 4)]
    assert MultiLabelDeepSupervisionLoss()(levels, label).item() == pytest.approx(LN2, rel=1e-6)
    summed = MultiLabelDeepSupervisionLoss(level_reduction="sum", reduction="sum")(levels, label)
    assert summed.item() == pytest.approx(4 * LN2, rel=1e-6)


def test_3d_targets_pool_over_depth_too():
    label = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    label[0, 3, 3, 3] = 1
    (multi_hot, _), = multi_label_targets(label, 2, [(2, 2, 2)])
    expected = torch.zeros(2, 2, 2)
    expected[1, 1, 1] = 1
    assert torch.equal(multi_hot[0, 1], expected)
    assert torch.equal(multi_hot[0, 0], torch.ones(2, 2, 2))


@pytest.mark.parametrize("spatial_dims, size", [(2, (32, 32)), (3, (16, 16, 16))])
def test_segresnetds_train_output_trains_through_the_loss(spatial_dims, size):
    torch.manual_seed(0)
    net = SegResNetDS(
        spatial_dims=spatial_dims, init_filters=4, in_channels=1, out_channels=3, blocks_down=(1, 1, 1, 1), dsdepth=3
    )
    net.train()
    levels = net(torch.randn(2, 1, *size))
    assert isinstance(levels, list) and len(levels) == 3
    label = torch.randint(0, 3, (2, 1, *size))
    value = MultiLabelDeepSupervisionLoss()(levels, label)
    value.backward()
    assert torch.isfinite(value)
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_dynunet_stacked_output_is_refused_with_a_clear_error():
    stacked = torch.zeros(2, 3, 4, 16, 16)  # DynUNet train output: (B, 1 + deep_supr_num, C, H, W)
    with pytest.raises(TypeError, match="DynUNet"):
        MultiLabelDeepSupervisionLoss()(stacked, torch.zeros(2, 16, 16, dtype=torch.long))
    with pytest.raises(ValueError, match="full size"):
        MultiLabelDeepSupervisionLoss()(list(torch.unbind(stacked, 1)), torch.zeros(2, 16, 16, dtype=torch.long))


@pytest.mark.parametrize(
    "levels, target, match",
    [
        ([torch.zeros(1, 2, 8, 8)], torch.zeros(1, 4, 4), "larger than the target"),
        ([torch.zeros(1, 2, 2, 2)], torch.full((1, 4, 4), 2), r"class indices in \[0, 1\]"),
        ([torch.zeros(1, 2, 2, 2)], torch.full((1, 4, 4), 0.5), "non-integer"),
        ([torch.zeros(1, 2, 2, 2)], torch.zeros(2, 4, 4), "batch size 1"),
        ([torch.zeros(1, 2, 2, 2), torch.zeros(1, 3, 4, 4)], torch.zeros(1, 4, 4), r"input\[1\]"),
        ([], torch.zeros(1, 4, 4), "non-empty"),
    ],
)
def test_bad_input_is_named_in_the_error(levels, target, match):
    with pytest.raises(ValueError, match=match):
        MultiLabelDeepSupervisionLoss()(levels, target)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="level_reduction"):
        MultiLabelDeepSupervisionLoss(level_reduction="max")
    with pytest.raises(ValueError, match="weights"):
        MultiLabelDeepSupervisionLoss(weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="2 levels"):
        MultiLabelDeepSupervisionLoss(weights=[1.0])([torch.zeros(1, 2, 1, 1), torch.zeros(1, 2, 2, 2)],
                                                     torch.zeros(1, 2, 2))


def test_validate_target_false_skips_the_value_checks():
    loss = MultiLabelDeepSupervisionLoss(validate_target=False)
    # 0.4 rounds down to class 0 by the int64 cast: no error, and the same value as the integer label
    value = loss([torch.zeros(1, 2, 2, 2)], torch.full((1, 4, 4), 0.4))
    assert value.item() == pytest.approx(LN2, rel=1e-6)
