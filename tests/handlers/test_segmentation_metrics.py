"""The evaluation's metric handlers: foreground pairs of one- and two-channel outputs, attaching without a key."""

from __future__ import annotations

import pytest
import torch

from monai_masksup.handlers import EvaluationMetrics, MaskedRobustnessReport, foreground_pair, segmentation_metrics


def test_foreground_pair_keeps_the_foreground_channel_of_decollated_and_collated_outputs():
    pred = torch.stack([torch.zeros(2, 2), torch.ones(2, 2)])  # one-hot: all foreground
    label = torch.ones(1, 2, 2)
    y_pred, y = foreground_pair()([{"pred": pred, "label": label}, {"pred": pred, "label": label}])
    assert [t.shape for t in y_pred] == [(1, 2, 2)] * 2 and torch.equal(y_pred[0], torch.ones(1, 2, 2))
    assert torch.equal(y[1], label)
    y_pred, y = foreground_pair()({"pred": pred[None].repeat(3, 1, 1, 1), "label": label[None].repeat(3, 1, 1, 1)})
    assert y_pred.shape == (3, 1, 2, 2) and torch.equal(y_pred, torch.ones(3, 1, 2, 2)) and y.shape == (3, 1, 2, 2)


def test_metric_names_carry_the_prefix_and_each_call_gives_new_handlers():
    first, second = segmentation_metrics(prefix="test_"), segmentation_metrics(prefix="test_")
    assert list(first) == ["test_iou", "test_dice", "test_hd95"]
    assert all(first[name] is not second[name] for name in first)


def test_a_value_that_is_not_a_metric_handler_is_named():
    with pytest.raises(ValueError, match="'test_dice'"):
        EvaluationMetrics({"test_dice": 0.5})


def test_robustness_report_without_a_completed_run_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="no evaluator run"):
        MaskedRobustnessReport(tmp_path).write()
    assert not any(tmp_path.iterdir())
