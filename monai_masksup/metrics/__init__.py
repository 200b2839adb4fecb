"""Metrics: the papers' per-image foreground IoU (an extension of MONAI's ``MeanIoU``); the MaskContrast evaluations."""

from .foreground_iou import ForegroundIoUMetric, compute_foreground_iou
from .kmeans import KMeansResult, kmeans, kmeans_plus_plus_init
from .pca_whitening import pca_whiten
from .cluster_matching import (
    ClusterMatch,
    cluster_confusion_matrix,
    evaluate_cluster_assignment,
    match_clusters,
    matched_class_iou,
)
from .clustering_evaluation import (
    cluster_prototypes,
    evaluate_pixel_clustering,
    evaluate_prototype_clustering,
    saliency_prototypes,
)
from .linear_probe import FrozenEmbedding, LinearProbe, LinearProbeResult, train_linear_probe
