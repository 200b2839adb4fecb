"""Ignite handlers for MONAI engines: metric handlers of the plugin's metrics."""

from .foreground_iou import ForegroundIoU
from .checkpoint_overwrite_guard import CheckpointOverwriteGuard
from .network_checkpoint_loader import CheckpointMismatchError, NetworkCheckpointLoader
from .training_checkpoint import TrainingCheckpoint
