"""K-means in torch: exact recovery of separable clusters, hand-computed centres, seeding."""

from __future__ import annotations

import pytest
import torch

from monai_masksup.metrics import kmeans, kmeans_plus_plus_init
from tests.conftest import requires_cuda


def _blobs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Four tight blobs of 30, 20, 25 and 5 points, 10 units apart, in 3-D."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]])
    sizes = [30, 20, 25, 5]
    truth = torch.cat([torch.full((n,), i) for i, n in enumerate(sizes)])
    x = centres[truth] + 0.3 * torch.randn(len(truth), 3, generator=g)
    perm = torch.randperm(len(truth), generator=g)
    return x[perm], truth[perm]


def _same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two labelings group the rows identically (equal up to renaming the clusters)."""
    pairs = torch.unique(torch.stack([a, b]), dim=1)
    return pairs.shape[1] == len(torch.unique(a)) == len(torch.unique(b))


def test_separable_clusters_are_recovered_exactly():
    x, truth = _blobs()
    result = kmeans(x, 4, n_init=5, seed=3)
    assert result.labels.shape == truth.shape and result.labels.dtype == torch.int64
    assert _same_partition(result.labels, truth)
    assert result.centroids.shape == (4, 3)


def test_centres_and_inertia_of_a_hand_computed_case():
    # {0, 1} and {10, 11}: centres 0.5 and 10.5, every point 0.5 away -> inertia 4 * 0.25
    x = torch.tensor([[0.0], [1.0], [10.0], [11.0]])
    result = kmeans(x, 2, seed=0)
    torch.testing.assert_close(result.centroids.sort(dim=0).values, torch.tensor([[0.5], [10.5]]))
    assert result.inertia == pytest.approx(1.0)
    assert result.labels[0] == result.labels[1] != result.labels[2] == result.labels[3]


def test_same_seed_gives_the_same_clustering():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(60, 5, generator=g)  # no cluster structure: the result depends on the seeding
    a, b = kmeans(x, 6, n_init=2, seed=11), kmeans(x, 6, n_init=2, seed=11)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.centroids, b.centroids) and a.inertia == b.inertia


def test_kmeans_plus_plus_is_seeded_and_returns_distinct_rows():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(40, 2, generator=g)
    first = kmeans_plus_plus_init(x, 5, torch.Generator().manual_seed(7))
    again = kmeans_plus_plus_init(x, 5, torch.Generator().manual_seed(7))
    other = kmeans_plus_plus_init(x, 5, torch.Generator().manual_seed(8))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert len(torch.unique(first, dim=0)) == 5
    assert all(bool((x == c).all(dim=1).any()) for c in first)


def test_duplicate_rows_leave_no_cluster_empty():
    # two distinct values for three clusters: one cluster ends up on a duplicate, inertia stays 0
    x = torch.tensor([[0.0], [0.0], [0.0], [5.0]])
    result = kmeans(x, 3, n_init=3, seed=0)
    assert result.inertia == pytest.approx(0.0)
    assert result.labels[3] != result.labels[0]


@requires_cuda
def test_cuda_tensors_give_the_cpu_clustering():
    x, truth = _blobs(seed=4)
    cpu, gpu = kmeans(x, 4, seed=5), kmeans(x.cuda(), 4, seed=5)
    assert gpu.labels.device.type == "cuda"
    assert torch.equal(cpu.labels, gpu.labels.cpu()) and _same_partition(cpu.labels, truth)


@pytest.mark.parametrize(
    "x, k, match",
    [(torch.zeros(3, 2), 4, "n_clusters"), (torch.zeros(3, 2), 0, "n_clusters"), (torch.zeros(6), 2, "(N, D)")],
)
def test_bad_arguments_are_refused(x, k, match):
    with pytest.raises(ValueError, match=match):
        kmeans(x, k)
