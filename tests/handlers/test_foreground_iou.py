"""The foreground IoU handler in a SupervisedEvaluator, on the hand-made masks of the metric's tests."""

from __future__ import annotations

import pytest
import torch
from monai.data import DataLoader
from monai.engines import SupervisedEvaluator
from monai.handlers import from_engine
from monai.transforms import Activationsd, AsDiscreted, Compose

from monai_masksup.handlers import ForegroundIoU
from tests.metrics.test_foreground_iou import LABELS, PREDS


@pytest.mark.parametrize("empty_score,expected", [(1.0, 7 / 12), (0.0, 1 / 3)])
def test_handler_in_supervised_evaluator_gives_hand_computed_mean(empty_score, expected):
    # identity network on images holding logits +-1: sigmoid > 0.5 recovers the hand-made prediction masks
    data = [{"image": 2.0 * p - 1.0, "label": y} for p, y in zip(PREDS, LABELS)]
    loader = DataLoader(data, batch_size=2, shuffle=False, num_workers=0)
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=loader,
        network=torch.nn.Identity(),
        postprocessing=Compose(
            [Activationsd(keys="pred", sigmoid=True), AsDiscreted(keys="pred", threshold=0.5)]
        ),
        key_val_metric={
            "val_iou": ForegroundIoU(empty_score=empty_score, output_transform=from_engine(["pred", "label"]))
        },
    )
    evaluator.run()
    assert evaluator.state.iteration == 2
    assert evaluator.state.metrics["val_iou"] == pytest.approx(expected)
    assert evaluator.state.metric_details["val_iou"].shape == (4, 1)
