"""The per-image foreground IoU metric on hand-made masks (its handler: tests/handlers/test_foreground_iou.py)."""

from __future__ import annotations

import math

import pytest
import torch
from monai.metrics import MeanIoU

from monai_masksup.metrics import ForegroundIoUMetric, compute_foreground_iou


def _mask(*pixels: tuple[int, int], size: int = 4) -> torch.Tensor:
    """A (1, size, size) binary mask with ones at the given (row, col) pixels."""
    m = torch.zeros(1, size, size)
    for r, c in pixels:
        m[0, r, c] = 1.0
    return m


# Four hand-made (prediction, label) pairs and their IoU:
#   A: pred 2x2 block at cols 0-1, label 2x2 block at cols 1-2 -> overlap 2, union 6 -> 1/3
#   B: identical 3-pixel masks -> 1
#   C: both empty -> empty_score (1 by default, 0 for the reference's sklearn jaccard_score)
#   D: empty label, 2 predicted pixels -> 0
PRED_A, LABEL_A = _mask((0, 0), (0, 1), (1, 0), (1, 1)), _mask((0, 1), (0, 2), (1, 1), (1, 2))
PRED_B = LABEL_B = _mask((2, 2), (3, 3), (3, 2))
PRED_C = LABEL_C = _mask()
PRED_D, LABEL_D = _mask((3, 0), (3, 1)), _mask()
PREDS = torch.stack([PRED_A, PRED_B, PRED_C, PRED_D])
LABELS = torch.stack([LABEL_A, LABEL_B, LABEL_C, LABEL_D])


def _one_hot(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([1 - x, x], dim=1)


def test_per_image_iou_of_hand_made_masks_default_convention():
    iou = compute_foreground_iou(PREDS, LABELS)
    assert iou.shape == (4, 1) and iou.dtype == torch.float32
    torch.testing.assert_close(iou, torch.tensor([[1 / 3], [1.0], [1.0], [0.0]]))


def test_empty_score_zero_reproduces_reference_jaccard_convention():
    iou = compute_foreground_iou(PREDS, LABELS, empty_score=0.0)
    torch.testing.assert_close(iou, torch.tensor([[1 / 3], [1.0], [0.0], [0.0]]))


def test_empty_prediction_on_non_empty_label_scores_zero():
    iou = compute_foreground_iou(torch.stack([_mask()]), torch.stack([LABEL_A]))
    torch.testing.assert_close(iou, torch.tensor([[0.0]]))


def test_one_hot_inputs_use_foreground_channel():
    expected = torch.tensor([[1 / 3], [1.0], [1.0], [0.0]])
    torch.testing.assert_close(compute_foreground_iou(_one_hot(PREDS), _one_hot(LABELS)), expected)
    torch.testing.assert_close(compute_foreground_iou(_one_hot(PREDS), LABELS), expected)


def test_3d_volume_iou():
    pred = torch.zeros(1, 1, 2, 2, 2)
    label = torch.zeros(1, 1, 2, 2, 2)
    pred[0, 0, 0, 0, 0] = pred[0, 0, 1, 1, 1] = pred[0, 0, 1, 0, 1] = 1
    label[0, 0, 1, 1, 1] = label[0, 0, 0, 1, 0] = 1
    # overlap 1 voxel, union 3 + 2 - 1 = 4
    torch.testing.assert_close(compute_foreground_iou(pred, label), torch.tensor([[0.25]]))


def test_monai_mean_iou_agrees_on_non_empty_binary_one_hot_images():
    preds, labels = _one_hot(PREDS[:2]), _one_hot(LABELS[:2])
    monai_iou = MeanIoU(include_background=False, reduction="none")(preds, labels)
    torch.testing.assert_close(monai_iou, compute_foreground_iou(preds, labels))
    # on an empty label MONAI's default (ignore_empty=True) gives NaN where ours gives empty_score
    empty = MeanIoU(include_background=False, reduction="none")(_one_hot(PREDS[2:3]), _one_hot(LABELS[2:3]))
    assert math.isnan(empty.item())


def test_metric_accumulates_and_averages_over_images():
    metric = ForegroundIoUMetric()
    metric(PREDS[:2], LABELS[:2])
    metric(PREDS[2:], LABELS[2:])
    assert metric.aggregate().item() == pytest.approx((1 / 3 + 1 + 1 + 0) / 4)
    assert metric.aggregate(reduction="none").shape == (4, 1)
    metric.reset()
    metric(PREDS, LABELS)
    assert metric.aggregate().item() == pytest.approx(7 / 12)


def test_nan_empty_score_excludes_empty_images_and_counts_not_nans():
    metric = ForegroundIoUMetric(empty_score=float("nan"), get_not_nans=True)
    metric(PREDS, LABELS)
    value, not_nans = metric.aggregate()
    assert value.item() == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert not_nans.item() == 3


def test_non_binarised_prediction_is_rejected():
    with pytest.raises(ValueError, match="y_pred must be binarised"):
        compute_foreground_iou(PREDS * 0.7, LABELS)


def test_label_with_0_255_values_is_rejected():
    with pytest.raises(ValueError, match="y must be binarised"):
        compute_foreground_iou(PREDS, LABELS * 255)


def test_multiclass_input_is_rejected_with_pointer_to_mean_iou():
    with pytest.raises(ValueError, match="MeanIoU"):
        compute_foreground_iou(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))


def test_size_mismatch_is_rejected():
    with pytest.raises(ValueError, match="same batch and spatial size"):
        compute_foreground_iou(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))


def test_empty_score_out_of_range_is_rejected():
    with pytest.raises(ValueError, match="empty_score"):
        ForegroundIoUMetric(empty_score=2.0)
