"""Evaluation: per-image segmentation report (IoU, Dice, HD95) and robustness to masked inputs.

Per-image report of a ``SupervisedEvaluator`` run (``metrics.json`` + ``metrics.csv``)::

    from monai.handlers import from_engine
    from monai_masksup.evaluation import SegmentationReportHandler

    # postprocessing of the evaluator: Activations(sigmoid=True) + AsDiscrete(threshold=0.5) on "pred"
    SegmentationReportHandler(
        output_dir="./eval", output_transform=from_engine(["pred", "label"])
    ).attach(evaluator)
    evaluator.run()  # writes ./eval/metrics.json and ./eval/metrics.csv

or, in ``configs/evaluate.json``::

    {"_target_": "monai_masksup.evaluation.SegmentationReportHandler",
     "output_dir": "@output_dir", "output_transform": "$monai.handlers.from_engine(['pred', 'label'])"}

Robustness to hole-masked test inputs (``robustness.json``, ``robustness.csv``, ``robustness.png``,
``robustness_examples.png``)::

    from monai_masksup.evaluation import evaluate_masked_robustness

    summary = evaluate_masked_robustness(network, test_loader, device="cuda", output_dir="./eval", seed=0)
    for row in summary["rows"]:
        print(row["bin"], row["iou_mean"], row["dice_mean"], row["hd95_mean"])
"""

from .contact_sheet import make_contact_sheet, to_display_uint8
from .foreground_prediction import binarise_foreground, foreground_channel, foreground_probability
from .line_chart import draw_line_chart, nice_ticks
from .masked_robustness import DEFAULT_COVERAGE_BINS, coverage_bin_name, evaluate_masked_robustness
from .segmentation_report import (
    REPORT_METRICS,
    SegmentationReportHandler,
    image_names,
    score_images,
    summarise_per_image,
    write_segmentation_report,
)
