"""Metrics: the papers' per-image foreground IoU."""

from .foreground_iou import ForegroundIoUMetric, compute_foreground_iou
