"""Segmenting whole OCT volumes B-scan by B-scan with a 2D network, through MONAI's ``SliceInferer``."""

from __future__ import annotations

from collections.abc import Sequence

from monai.inferers import SliceInferer

__all__ = ["BSCAN_AXIS", "bscan_slice_inferer"]

#: spatial axis of the B-scans in a volume loaded by MONAI's ``ITKReader``/``NibabelReader``: ``(width, depth, n)``.
BSCAN_AXIS = 2


def bscan_slice_inferer(
    roi_size: Sequence[int] = (-1, -1), sw_batch_size: int = 8, overlap: float = 0.0, **kwargs
) -> SliceInferer:
    """A ``SliceInferer`` that runs a 2D B-scan network over every B-scan of a ``(B, C, width, depth, n)`` volume.

    The B-scans are the volume's last spatial axis (:data:`BSCAN_AXIS`), as the volumes are loaded for training
    (:func:`oct_volume_transforms`), so the network sees each B-scan as it saw them in training and the output
    is a volume of logits ``(B, classes, width, depth, n)``. The default ``roi_size=(-1, -1)`` feeds whole
    B-scans (MONAI replaces non-positive sizes by the image size); give a window (e.g. ``(256, 256)``) when the
    network needs sizes divisible by its downsampling, or when memory is short. In a bundle config::

        "inferer": {"_target_": "SliceInferer", "spatial_dim": 2, "roi_size": [-1, -1], "sw_batch_size": 8}

    Args:
        roi_size: the 2D window over ``(width, depth)``; ``-1`` takes the whole axis.
        sw_batch_size: B-scans per network call.
        overlap: window overlap when ``roi_size`` is smaller than a B-scan.
        kwargs: other ``SlidingWindowInferer`` options (``mode``, ``padding_mode``, ``device``, ...).

    Returns:
        the configured ``SliceInferer``.

    Raises:
        ValueError: when ``roi_size`` does not have two values.
    """
    if len(roi_size) != 2:
        raise ValueError(f"roi_size must be the 2D B-scan window (width, depth), got {tuple(roi_size)}.")
    return SliceInferer(
        spatial_dim=BSCAN_AXIS, roi_size=tuple(roi_size), sw_batch_size=sw_batch_size, overlap=overlap, **kwargs
    )
