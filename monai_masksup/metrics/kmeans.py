"""K-means clustering in torch: seeded, k-means++ initialisation, several restarts."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["KMeansResult", "kmeans", "kmeans_plus_plus_init"]


@dataclass
class KMeansResult:
    """Outcome of :func:`kmeans`.

    Attributes:
        labels: ``(N,)`` int64 cluster index of every row.
        centroids: ``(K, D)`` cluster centres.
        inertia: sum of squared distances of the rows to their centres (the objective).
        n_iter: Lloyd iterations of the kept restart.
    """

    labels: torch.Tensor
    centroids: torch.Tensor
    inertia: float
    n_iter: int


def kmeans_plus_plus_init(x: torch.Tensor, n_clusters: int, generator: torch.Generator) -> torch.Tensor:
    """
    k-means++ seeding (Arthur and Vassilvitskii, SODA 2007): the first centre uniformly, each next one with
    probability proportional to the squared distance to the nearest centre chosen so far.

    The draws use a CPU ``generator`` whatever the device of ``x``, so a seed picks the same rows on CPU and GPU.

    Args:
        x: ``(N, D)`` rows.
        n_clusters: number of centres ``K <= N``.
        generator: CPU ``torch.Generator`` for the draws.

    Returns:
        ``(K, D)`` initial centres (copies of rows of ``x``).
    """
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=generator))
    centres = [x[first]]
    closest = ((x - x[first]) ** 2).sum(dim=1)
    for _ in range(1, n_clusters):
        weights = closest.double().cpu()
        if float(weights.sum()) <= 0:
            # every row already coincides with a centre: any row will do
            weights = torch.ones_like(weights)
        index = int(torch.multinomial(weights, 1, generator=generator))
        centres.append(x[index])
        closest = torch.minimum(closest, ((x - x[index]) ** 2).sum(dim=1))
    return torch.stack(centres)


def _lloyd(
    x: torch.Tensor, centroids: torch.Tensor, max_iter: int, tol: float
) -> tuple[torch.Tensor, torch.Tensor, float, int]:
    """Lloyd iterations from ``centroids``; returns labels, centroids, inertia and the iteration count."""
    n_clusters = centroids.shape[0]
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        distances = torch.cdist(x, centroids) ** 2
        labels = distances.argmin(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=n_clusters).to(x.dtype)
        new_centroids = sums / counts.clamp_min(1).unsqueeze(1)
        empty = counts == 0
        if bool(empty.any()):
            # an empty cluster takes the rows farthest from their centres, as scikit-learn's KMeans does
            nearest = distances.gather(1, labels.unsqueeze(1)).squeeze(1)
            far = nearest.argsort(descending=True)[: int(empty.sum())]
            new_centroids[empty] = x[far]
        shift = float(((new_centroids - centroids) ** 2).sum())
        centroids = new_centroids
        if shift <= tol:
            break
    distances = torch.cdist(x, centroids) ** 2
    labels = distances.argmin(dim=1)
    inertia = float(distances.gather(1, labels.unsqueeze(1)).sum())
    return labels, centroids, inertia, n_iter


def kmeans(
    x: torch.Tensor,
    n_clusters: int,
    n_init: int = 10,
    max_iter: int = 300,
    tol: float = 1e-4,
    seed: int = 0,
) -> KMeansResult:
    """
    K-means (Lloyd's algorithm) with k-means++ seeding and ``n_init`` restarts, keeping the restart of least
    inertia.

    The MaskContrast evaluation (Van Gansbeke et al., ICCV 2021) clusters with scikit-learn's
    ``MiniBatchKMeans``; scikit-learn is not a dependency of this project, and MONAI and Ignite have no
    clustering, so this is full-batch K-means in torch, on the device of ``x``. Full batch instead of
    mini-batch: the evaluation clusters one prototype per image (hundreds to thousands of rows), where
    full-batch K-means is exact and cheap. ``tol`` is relative as in scikit-learn: iterations stop when the
    squared centre shift is at most ``tol`` times the mean per-feature variance of ``x``.

    Args:
        x: ``(N, D)`` floating-point rows on any device (whiten first with :func:`pca_whiten` as the reference).
        n_clusters: number of clusters ``1 <= K <= N``.
        n_init: number of k-means++ restarts.
        max_iter: maximum Lloyd iterations per restart.
        tol: relative tolerance on the centre shift.
        seed: seed of the CPU generator behind every random draw; the same seed gives the same result.

    Returns:
        :class:`KMeansResult` of the best restart.

    Raises:
        ValueError: for a non-2-D or non-floating ``x``, ``n_clusters`` outside ``[1, N]``, ``n_init < 1`` or
            ``max_iter < 1``.
    """
    if x.ndim != 2 or not x.is_floating_point():
        raise ValueError(f"kmeans: x must be a floating-point (N, D) tensor, got {x.dtype} {tuple(x.shape)}.")
    if not 1 <= n_clusters <= x.shape[0]:
        raise ValueError(f"kmeans: n_clusters must be in [1, N={x.shape[0]}], got {n_clusters}.")
    if n_init < 1 or max_iter < 1:
        raise ValueError(f"kmeans: n_init and max_iter must be >= 1, got n_init={n_init}, max_iter={max_iter}.")
    generator = torch.Generator().manual_seed(seed)
    abs_tol = tol * float(x.var(dim=0, unbiased=False).mean()) if x.shape[0] > 1 else 0.0
    best: KMeansResult | None = None
    for _ in range(n_init):
        init = kmeans_plus_plus_init(x, n_clusters, generator)
        labels, centroids, inertia, n_iter = _lloyd(x, init, max_iter, abs_tol)
        if best is None or inertia < best.inertia:
            best = KMeansResult(labels=labels, centroids=centroids, inertia=inertia, n_iter=n_iter)
    assert best is not None
    return best
