"""Metrics: the papers' per-image foreground IoU (an extension of MONAI's ``MeanIoU``)."""

from .foreground_iou import ForegroundIoUMetric, compute_foreground_iou
