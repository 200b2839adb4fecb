"""Ignite handlers for MONAI engines: metric handlers of the plugin's metrics."""

from .foreground_iou import ForegroundIoU
from .checkpoint_resume import KeyMetricRecord, ResumeFromLatestCheckpoint, find_latest_checkpoint
