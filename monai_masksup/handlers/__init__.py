"""Ignite handlers for MONAI engines: the plugin's metric handlers, reports, image grids and checkpoint helpers."""

from .foreground_iou import ForegroundIoU
from .engine_scalars import from_engine_scalars
from .evaluation_metrics import EvaluationMetrics
from .segmentation_metrics import SEGMENTATION_METRICS, foreground_pair, segmentation_metrics
from .masked_robustness_report import MaskedRobustnessReport
from .segmentation_report import SegmentationReportSaver
from .tensorboard_image_grid import TensorBoardImageGrid
from .checkpoint_overwrite_guard import CheckpointOverwriteGuard
from .network_checkpoint_loader import CheckpointMismatchError, NetworkCheckpointLoader
from .training_checkpoint import TrainingCheckpoint
