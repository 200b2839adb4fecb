"""Evaluation parts with no MONAI home: the report summary, the robustness table, charts and image grids.

What attaches to an engine lives in :py:mod:`monai_masksup.handlers`. Per-image report of a ``SupervisedEvaluator``
(MONAI's ``MetricsSaver`` CSV files plus ``metrics.json``)::

    from monai_masksup.handlers import EvaluationMetrics, SegmentationReportSaver, segmentation_metrics

    # postprocessing of the evaluator: Activationsd(sigmoid=True) + AsDiscreted(threshold=0.5) on "pred"
    handlers = [
        EvaluationMetrics(segmentation_metrics(prefix="test_")),
        SegmentationReportSaver("./eval", {"iou": "test_iou", "dice": "test_dice", "hd95": "test_hd95"}),
    ]

Robustness to hole-masked test inputs (``robustness.json``, ``robustness.csv``, ``robustness.png``,
``robustness_examples.png``)::

    from monai_masksup.evaluation.masked_robustness import MaskedRobustnessEvaluation

    summary = MaskedRobustnessEvaluation(network, test_loader, device="cuda", output_dir="./eval", seed=0).run()
    for row in summary["rows"]:
        print(row["bin"], row["iou_mean"], row["dice_mean"], row["hd95_mean"])
"""

from .segmentation_report import (
    REPORT_METRICS,
    image_meta,
    image_name,
    json_safe,
    per_image_records,
    summarise_per_image,
)
from .line_chart import draw_line_chart, nice_ticks
from .image_grid import display_panel, tile_grid
from .contact_sheet import make_contact_sheet, to_display_uint8
from .robustness_table import (
    CLEAN,
    DEFAULT_COVERAGE_BINS,
    ROW_COLUMNS,
    check_bins,
    coverage_bin_name,
    robustness_row,
    write_robustness_table,
)
from .masked_input_batch import MaskedInputBatch

# `masked_robustness.MaskedRobustnessEvaluation` builds evaluators with the plugin's handlers, which use this
# package; it is therefore imported from its module, not from here (an import cycle otherwise).
