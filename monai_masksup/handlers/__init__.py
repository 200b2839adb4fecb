"""Ignite handlers for MONAI engines: metric handlers of the plugin's metrics."""

from .foreground_iou import ForegroundIoU
