"""Matching of cluster indices to classes (Hungarian one-to-one or many-to-one) and the mIoU after matching."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

__all__ = [
    "ClusterMatch",
    "cluster_confusion_matrix",
    "match_clusters",
    "matched_class_iou",
    "evaluate_cluster_assignment",
]

_SCORES = ("iou", "count")


@dataclass
class ClusterMatch:
    """Outcome of :func:`evaluate_cluster_assignment`.

    Attributes:
        mapping: ``(K,)`` int64 class of every cluster, ``-1`` for a cluster left unmatched.
        confusion: ``(K, C)`` int64 counts of (cluster, class) pairs.
        class_iou: ``(C,)`` float64 IoU of every class after the matching.
        miou: mean of ``class_iou`` over the ``C`` classes.
        accuracy: share of the counted elements whose matched cluster is their class.
    """

    mapping: torch.Tensor
    confusion: torch.Tensor
    class_iou: torch.Tensor
    miou: float
    accuracy: float


def cluster_confusion_matrix(
    clusters: torch.Tensor, labels: torch.Tensor, n_clusters: int, n_classes: int, ignore_index: int | None = None
) -> torch.Tensor:
    """
    Count how often every cluster meets every class.

    Ignite's ``ConfusionMatrix`` needs class scores and a square matrix; here predictions are cluster indices,
    and the number of clusters may exceed the number of classes (over-clustering), hence this counter.

    Args:
        clusters: integer cluster index of every element, any shape, values in ``[0, n_clusters)``.
        labels: integer class of every element, the same number of elements, values in ``[0, n_classes)``
            or ``ignore_index``.
        n_clusters: number of clusters ``K``.
        n_classes: number of classes ``C``.
        ignore_index: label value of elements left out (e.g. 255 as in Pascal VOC).

    Returns:
        ``(K, C)`` int64 counts, on the device of ``clusters``.

    Raises:
        ValueError: for differing element counts, non-integer input, or values out of range.
    """
    if clusters.is_floating_point() or labels.is_floating_point():
        raise ValueError(f"clusters and labels must be integer tensors, got {clusters.dtype} and {labels.dtype}.")
    if clusters.numel() != labels.numel():
        raise ValueError(
            f"clusters and labels must have the same number of elements, got shapes {tuple(clusters.shape)} and "
            f"{tuple(labels.shape)}."
        )
    clusters = clusters.reshape(-1).long()
    labels = labels.reshape(-1).long().to(clusters.device)
    if ignore_index is not None:
        valid = labels != ignore_index
        clusters, labels = clusters[valid], labels[valid]
    if clusters.numel() and (int(clusters.min()) < 0 or int(clusters.max()) >= n_clusters):
        raise ValueError(
            f"clusters must lie in [0, {n_clusters}), got values in [{int(clusters.min())}, {int(clusters.max())}]."
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(
            f"labels must lie in [0, {n_classes})"
            + (f" or equal ignore_index={ignore_index}" if ignore_index is not None else "")
            + f", got values in [{int(labels.min())}, {int(labels.max())}]."
        )
    counts = torch.bincount(clusters * n_classes + labels, minlength=n_clusters * n_classes)
    return counts.reshape(n_clusters, n_classes)


def _iou_matrix(confusion: np.ndarray) -> np.ndarray:
    """IoU of every (cluster, class) pair, 0 where both are empty."""
    union = confusion.sum(axis=1, keepdims=True) + confusion.sum(axis=0, keepdims=True) - confusion
    return np.divide(confusion, union, out=np.zeros(confusion.shape, dtype=np.float64), where=union > 0)


def match_clusters(confusion: torch.Tensor, many_to_one: bool | None = None, score: str = "iou") -> torch.Tensor:
    """
    Assign a class to every cluster, as the MaskContrast evaluation (Van Gansbeke et al., ICCV 2021).

    - one-to-one: the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) picks the assignment of
      largest total score; with more clusters than classes the extra clusters stay unmatched (``-1``), with
      fewer some classes get no cluster.
    - many-to-one (over-clustering): every cluster goes to the class of its largest score independently, so
      several clusters may share a class.

    ``score="iou"`` scores a (cluster, class) pair by their IoU, as the reference does for both matchings
    (its "majority vote" is the argmax of IoU); ``score="count"`` by the number of shared elements: the
    Hungarian matching of largest accuracy, and many-to-one by majority class. They differ for a cluster that
    mixes a large class with a small one: IoU favours the small class.

    Args:
        confusion: ``(K, C)`` counts from :func:`cluster_confusion_matrix`.
        many_to_one: ``None`` chooses many-to-one exactly when ``K > C``.
        score: ``"iou"`` or ``"count"``.

    Returns:
        ``(K,)`` int64 class of every cluster (``-1`` for an unmatched cluster), on the device of ``confusion``.

    Raises:
        ValueError: for a non-2-D ``confusion`` or an unknown ``score``.
    """
    if confusion.ndim != 2:
        raise ValueError(f"confusion must be a (clusters, classes) matrix, got shape {tuple(confusion.shape)}.")
    if score not in _SCORES:
        raise ValueError(f"score must be one of {_SCORES}, got '{score}'.")
    n_clusters, n_classes = confusion.shape
    counts = confusion.detach().cpu().double().numpy()
    scores = _iou_matrix(counts) if score == "iou" else counts
    if many_to_one is None:
        many_to_one = n_clusters > n_classes
    if many_to_one:
        mapping = scores.argmax(axis=1)
    else:
        mapping = np.full(n_clusters, -1, dtype=np.int64)
        rows, cols = linear_sum_assignment(scores, maximize=True)
        mapping[rows] = cols
    return torch.as_tensor(mapping, dtype=torch.int64, device=confusion.device)


def matched_class_iou(confusion: torch.Tensor, mapping: torch.Tensor) -> tuple[torch.Tensor, float]:
    """
    Per-class IoU and accuracy once every cluster predicts its matched class.

    A class absent from both the labels and the matched predictions scores 0, as in the reference's
    ``tp / max(tp + fp + fn, 1e-8)``; elements of an unmatched cluster count as missed for their class.

    Args:
        confusion: ``(K, C)`` counts.
        mapping: ``(K,)`` class per cluster from :func:`match_clusters` (``-1``: unmatched).

    Returns:
        ``(C,)`` float64 IoU per class, and the accuracy (0 when nothing was counted).
    """
    counts = confusion.detach().cpu().double()
    n_classes = counts.shape[1]
    mapping = mapping.detach().cpu().long()
    matched = mapping >= 0
    predicted = torch.zeros(n_classes, n_classes, dtype=torch.float64).index_add_(
        0, mapping[matched], counts[matched]
    )  # (predicted class, true class)
    tp = predicted.diagonal()
    fp = predicted.sum(dim=1) - tp
    fn = counts.sum(dim=0) - tp
    class_iou = tp / (tp + fp + fn).clamp_min(1e-8)
    total = float(counts.sum())
    accuracy = float(tp.sum()) / total if total > 0 else 0.0
    return class_iou, accuracy


def evaluate_cluster_assignment(
    clusters: torch.Tensor,
    labels: torch.Tensor,
    n_clusters: int,
    n_classes: int,
    many_to_one: bool | None = None,
    score: str = "iou",
    ignore_index: int | None = None,
) -> ClusterMatch:
    """
    Match clusters to classes and score the matched prediction (mIoU, accuracy).

    Args:
        clusters: integer cluster index of every element (image or pixel), any shape.
        labels: integer class of every element, the same number of elements.
        n_clusters: number of clusters ``K``.
        n_classes: number of classes ``C``.
        many_to_one: see :func:`match_clusters`; ``None``: many-to-one exactly when ``K > C``.
        score: ``"iou"`` (the reference) or ``"count"``, see :func:`match_clusters`.
        ignore_index: label value of elements left out.

    Returns:
        :class:`ClusterMatch`.

    Raises:
        ValueError: see :func:`cluster_confusion_matrix` and :func:`match_clusters`.
    """
    confusion = cluster_confusion_matrix(clusters, labels, n_clusters, n_classes, ignore_index=ignore_index)
    mapping = match_clusters(confusion, many_to_one=many_to_one, score=score)
    class_iou, accuracy = matched_class_iou(confusion, mapping)
    return ClusterMatch(
        mapping=mapping, confusion=confusion, class_iou=class_iou, miou=float(class_iou.mean()), accuracy=accuracy
    )
