"""evaluate.json scores its report with the metric handlers the masked-robustness run uses."""

from __future__ import annotations

import pytest
from monai.bundle import ConfigParser
from monai.handlers import HausdorffDistance, IgniteMetricHandler

from monai_masksup.handlers import ForegroundIoU
from tests.bundles.conftest import GLAS_BUNDLE, KVASIR_BUNDLE, configs


@pytest.mark.parametrize("bundle", [GLAS_BUNDLE, KVASIR_BUNDLE], ids=["glas", "kvasir"])
def test_evaluation_metrics_are_the_segmentation_metrics_with_test_prefix(tmp_path, bundle):
    parser = ConfigParser()
    parser.read_config(configs(bundle, "train.json", "evaluate.json"))
    parser["bundle_root"] = str(tmp_path)
    metrics = parser.get_parsed_content("test_metrics")
    assert list(metrics) == ["test_iou", "test_dice", "test_hd95"]
    assert isinstance(metrics["test_iou"], ForegroundIoU)
    # Dice of an empty label and an empty prediction is 1, not NaN (MeanDice cannot be told so)
    assert type(metrics["test_dice"]) is IgniteMetricHandler and metrics["test_dice"].metric_fn.ignore_empty is False
    assert isinstance(metrics["test_hd95"], HausdorffDistance) and metrics["test_hd95"].metric_fn.percentile == 95
