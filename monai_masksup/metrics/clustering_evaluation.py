"""The MaskContrast clustering evaluation: K-means over per-image salient prototypes, matched to classes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .cluster_matching import ClusterMatch, cluster_confusion_matrix, match_clusters, matched_class_iou
from .kmeans import kmeans
from .pca_whitening import pca_whiten

__all__ = ["saliency_prototypes", "cluster_prototypes", "evaluate_prototype_clustering", "evaluate_pixel_clustering"]


def saliency_prototypes(embeddings: torch.Tensor, saliency: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """
    One prototype per image: the L2-normalised sum of its pixel embeddings over its salient mask.

    As the reference evaluation of "Unsupervised Semantic Segmentation by Contrasting Object Mask Proposals"
    (Van Gansbeke et al., ICCV 2021), pixels are weighted by ``saliency * (saliency > threshold)``: a binary
    mask gives the normalised mean embedding of the mask, saliency probabilities weight it by confidence. An
    image without any salient pixel gets the zero vector.

    Args:
        embeddings: ``(B, D, *spatial)`` pixel embeddings, 2D or 3D.
        saliency: ``(B, 1, *spatial)`` saliency probabilities or a binary mask, the same spatial size.
        threshold: pixels with saliency at most ``threshold`` are left out.

    Returns:
        ``(B, D)`` prototypes of unit norm (zero for an empty mask), dtype of ``embeddings``.

    Raises:
        ValueError: when the shapes do not match.
    """
    if embeddings.ndim < 3 or saliency.ndim != embeddings.ndim or saliency.shape[1] != 1:
        raise ValueError(
            f"embeddings must be (B, D, *spatial) and saliency (B, 1, *spatial), got shapes {tuple(embeddings.shape)} "
            f"and {tuple(saliency.shape)}."
        )
    if saliency.shape[0] != embeddings.shape[0] or saliency.shape[2:] != embeddings.shape[2:]:
        raise ValueError(
            f"saliency {tuple(saliency.shape)} must have the batch and spatial size of embeddings "
            f"{tuple(embeddings.shape)}."
        )
    weights = saliency.to(embeddings.dtype)
    weights = weights * (weights > threshold)
    summed = (embeddings * weights).flatten(2).sum(dim=2)
    return F.normalize(summed, dim=1)


def cluster_prototypes(
    prototypes: torch.Tensor,
    n_clusters: int,
    n_components: int | None = 32,
    whiten: bool = True,
    n_init: int = 10,
    seed: int = 0,
) -> torch.Tensor:
    """
    Cluster prototypes as the reference: PCA whitening to ``n_components`` (:func:`pca_whiten`), then K-means
    (:func:`kmeans`).

    Args:
        prototypes: ``(N, D)`` prototypes.
        n_clusters: number of clusters.
        n_components: PCA components kept before clustering (the reference: 32).
        whiten: whiten first (the reference does); ``False`` clusters the raw prototypes.
        n_init: K-means restarts.
        seed: K-means seed.

    Returns:
        ``(N,)`` int64 cluster of every prototype.
    """
    features = pca_whiten(prototypes.float(), n_components=n_components) if whiten else prototypes.float()
    return kmeans(features, n_clusters, n_init=n_init, seed=seed).labels


def evaluate_prototype_clustering(
    prototypes: torch.Tensor,
    labels: torch.Tensor,
    n_classes: int,
    n_clusters: int | None = None,
    many_to_one: bool | None = None,
    score: str = "iou",
    n_components: int | None = 32,
    whiten: bool = True,
    n_init: int = 10,
    seed: int = 0,
) -> ClusterMatch:
    """
    Image-level clustering evaluation: cluster the per-image prototypes and match the clusters to per-image
    class labels (e.g. the GlaS benign / malignant grade). IoU and accuracy count images.

    On binary segmentation data (one foreground class) the pixel-level evaluation is trivial; matching
    prototypes to an image-level label such as the GlaS grade tells whether the embedding separates kinds of
    tissue at all.

    Args:
        prototypes: ``(N, D)`` prototypes from :func:`saliency_prototypes`.
        labels: ``(N,)`` integer class of every image in ``[0, n_classes)``.
        n_classes: number of classes ``C``.
        n_clusters: number of clusters, ``C`` by default (one-to-one matching); more gives over-clustering.
        many_to_one: see :func:`~monai_masksup.metrics.match_clusters`.
        score: ``"iou"`` (the reference) or ``"count"``, see :func:`~monai_masksup.metrics.match_clusters`.
        n_components: PCA components before K-means.
        whiten: PCA-whiten before K-means.
        n_init: K-means restarts.
        seed: K-means seed.

    Returns:
        :class:`~monai_masksup.metrics.ClusterMatch` over images.

    Raises:
        ValueError: when the counts of prototypes and labels differ, or labels are out of range.
    """
    if prototypes.ndim != 2 or labels.numel() != prototypes.shape[0]:
        raise ValueError(
            f"prototypes must be (N, D) with one label each, got prototypes {tuple(prototypes.shape)} and "
            f"labels {tuple(labels.shape)}."
        )
    n_clusters = n_classes if n_clusters is None else n_clusters
    clusters = cluster_prototypes(prototypes, n_clusters, n_components, whiten, n_init, seed)
    confusion = cluster_confusion_matrix(clusters, labels.to(clusters.device), n_clusters, n_classes)
    mapping = match_clusters(confusion, many_to_one=many_to_one, score=score)
    class_iou, accuracy = matched_class_iou(confusion, mapping)
    return ClusterMatch(mapping, confusion, class_iou, float(class_iou.mean()), accuracy)


def evaluate_pixel_clustering(
    prototypes: torch.Tensor,
    masks: torch.Tensor | Sequence[torch.Tensor],
    labels: torch.Tensor | Sequence[torch.Tensor],
    n_classes: int,
    n_clusters: int | None = None,
    many_to_one: bool | None = None,
    score: str = "iou",
    ignore_index: int | None = None,
    n_components: int | None = 32,
    whiten: bool = True,
    n_init: int = 10,
    seed: int = 0,
) -> ClusterMatch:
    """
    Pixel-level clustering evaluation, as the reference's semantic segmentation by K-means: every salient
    pixel of an image is predicted as its image's cluster ``+ 1``, every other pixel as background ``0``; the
    ``n_clusters + 1`` predicted ids are matched to the ``C`` classes of the pixel labels (class 0 =
    background), Hungarian when ``n_clusters + 1 == C`` and many-to-one for over-clustering, and mIoU counts
    pixels of all images together.

    Args:
        prototypes: ``(N, D)`` prototypes from :func:`saliency_prototypes`.
        masks: binary salient masks, ``(N, 1, *spatial)`` or a sequence of ``N`` tensors ``(1, *spatial)`` (sizes
            may differ between images, e.g. at original resolution).
        labels: integer class maps with the same shapes as ``masks``; class 0 is background.
        n_classes: number of classes ``C`` including background.
        n_clusters: number of foreground clusters, ``C - 1`` by default (the reference: 20 for Pascal VOC's 21).
        many_to_one: see :func:`~monai_masksup.metrics.match_clusters`.
        score: ``"iou"`` (the reference) or ``"count"``.
        ignore_index: label value of pixels left out (e.g. 255).
        n_components: PCA components before K-means.
        whiten: PCA-whiten before K-means.
        n_init: K-means restarts.
        seed: K-means seed.

    Returns:
        :class:`~monai_masksup.metrics.ClusterMatch` over pixels; its ``mapping`` has ``n_clusters + 1`` entries,
        entry 0 being the background prediction.

    Raises:
        ValueError: when the numbers of prototypes, masks and labels differ, or a mask and its label differ in
            shape.
    """
    if len(masks) != prototypes.shape[0] or len(labels) != prototypes.shape[0]:
        raise ValueError(
            f"need one mask and one label map per prototype, got {prototypes.shape[0]} prototypes, {len(masks)} "
            f"masks and {len(labels)} label maps."
        )
    n_clusters = n_classes - 1 if n_clusters is None else n_clusters
    clusters = cluster_prototypes(prototypes, n_clusters, n_components, whiten, n_init, seed)
    confusion = torch.zeros(n_clusters + 1, n_classes, dtype=torch.int64)
    for index, (mask, label) in enumerate(zip(masks, labels)):
        if mask.shape != label.shape:
            raise ValueError(f"image {index}: mask {tuple(mask.shape)} and label {tuple(label.shape)} differ in shape.")
        predicted = (mask > 0).long() * (int(clusters[index]) + 1)
        confusion += cluster_confusion_matrix(
            predicted, label.long(), n_clusters + 1, n_classes, ignore_index=ignore_index
        ).cpu()
    mapping = match_clusters(confusion, many_to_one=many_to_one, score=score)
    class_iou, accuracy = matched_class_iou(confusion, mapping)
    return ClusterMatch(mapping, confusion, class_iou, float(class_iou.mean()), accuracy)
