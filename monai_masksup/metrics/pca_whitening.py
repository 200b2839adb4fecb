"""PCA whitening of embeddings before K-means, as in the MaskContrast evaluation."""

from __future__ import annotations

import torch

__all__ = ["pca_whiten"]


def pca_whiten(x: torch.Tensor, n_components: int | None = 32, rank_tol: float = 1e-6) -> torch.Tensor:
    """
    Project rows onto their principal components and scale every component to unit variance.

    The K-means evaluation of "Unsupervised Semantic Segmentation by Contrasting Object Mask Proposals"
    (Van Gansbeke et al., ICCV 2021) whitens the prototypes with scikit-learn's ``PCA(n_components=32,
    whiten=True)`` before clustering; this is the same transform in torch (scikit-learn is not a dependency),
    computed exactly with a thin SVD of the centred data, on the device of ``x``. The result equals
    scikit-learn's up to the sign of each component (which K-means does not see): ``U * sqrt(N - 1)``.

    One deviation: components whose singular value is below ``rank_tol`` times the largest are dropped,
    because whitening would blow their rounding noise up to unit variance (scikit-learn keeps them, e.g. the
    last component of ``N <= D`` points, which centring makes degenerate). So the output may have fewer than
    ``n_components`` columns.

    Args:
        x: ``(N, D)`` floating-point rows (e.g. per-image prototypes or pixel embeddings), ``N >= 2``.
        n_components: components kept, at most ``min(N, D)``; ``None`` keeps all.
        rank_tol: relative singular value under which a component counts as degenerate.

    Returns:
        ``(N, K)`` whitened rows, ``K <= n_components``, each column with mean 0 and unbiased variance 1.

    Raises:
        ValueError: when ``x`` is not 2-D floating point with at least two rows, or ``n_components < 1``.
    """
    if x.ndim != 2 or not x.is_floating_point() or x.shape[0] < 2:
        raise ValueError(
            f"pca_whiten: x must be a floating-point (N, D) tensor with N >= 2, got {x.dtype} {tuple(x.shape)}."
        )
    if n_components is not None and n_components < 1:
        raise ValueError(f"pca_whiten: n_components must be >= 1 or None, got {n_components}.")
    centred = x - x.mean(dim=0, keepdim=True)
    u, s, _ = torch.linalg.svd(centred, full_matrices=False)
    keep = s > rank_tol * s[0].clamp_min(torch.finfo(s.dtype).tiny)
    if n_components is not None:
        keep[n_components:] = False
    return u[:, keep] * (x.shape[0] - 1) ** 0.5
