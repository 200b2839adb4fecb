"""Matching clusters to classes: permutations undone, over-clustering, hand-computed mIoU."""

from __future__ import annotations

import pytest
import torch

from monai_masksup.metrics import cluster_confusion_matrix, evaluate_cluster_assignment, match_clusters


def _from_confusion(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Element-wise (clusters, labels) realising a (cluster, class) count table."""
    clusters, labels = [], []
    for k, row in enumerate(rows):
        for c, n in enumerate(row):
            clusters += [k] * n
            labels += [c] * n
    return torch.tensor(clusters), torch.tensor(labels)


def test_confusion_matrix_counts_pairs_and_skips_ignored_labels():
    clusters = torch.tensor([[0, 1, 1], [2, 2, 0]])
    labels = torch.tensor([[1, 0, 0], [255, 1, 1]])
    confusion = cluster_confusion_matrix(clusters, labels, n_clusters=3, n_classes=2, ignore_index=255)
    assert torch.equal(confusion, torch.tensor([[0, 2], [2, 0], [0, 1]]))


def test_a_constructed_permutation_is_undone_exactly():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (4, 16, 16), generator=g)
    permutation = torch.tensor([3, 0, 4, 1, 2])  # class c is cluster permutation[c]
    clusters = permutation[labels]
    result = evaluate_cluster_assignment(clusters, labels, n_clusters=5, n_classes=5)
    assert torch.equal(result.mapping[permutation], torch.arange(5))
    assert result.miou == 1.0 and result.accuracy == 1.0


def test_hand_computed_miou_of_a_noisy_two_class_clustering():
    # cluster 0 holds 1 pixel of class 0 and 3 of class 1; cluster 1 holds 5 of class 0 and 1 of class 1.
    # IoU(k0, c1) = 3/5 and IoU(k1, c0) = 5/7 beat the other pairing (1/9 each), so k0 -> 1, k1 -> 0;
    # then class 0: tp 5, fp 1, fn 1 -> 5/7; class 1: tp 3, fp 1, fn 1 -> 3/5; accuracy 8/10
    clusters, labels = _from_confusion([[1, 3], [5, 1]])
    result = evaluate_cluster_assignment(clusters, labels, n_clusters=2, n_classes=2)
    assert result.mapping.tolist() == [1, 0]
    torch.testing.assert_close(result.class_iou, torch.tensor([5 / 7, 3 / 5], dtype=torch.float64))
    assert result.miou == pytest.approx(23 / 35) and result.accuracy == pytest.approx(0.8)


# Over-clustering, 3 clusters and 2 classes of 106 and 10 elements: cluster 1 mixes 6 of the large class with 4 of
# the small one. By count it goes to its majority class 0; by IoU (6/110 against 4/16) to class 1.
OVER = [[100, 0], [6, 4], [0, 6]]


def test_over_clustering_by_majority_count_maps_several_clusters_to_one_class():
    clusters, labels = _from_confusion(OVER)
    result = evaluate_cluster_assignment(clusters, labels, n_clusters=3, n_classes=2, score="count")
    assert result.mapping.tolist() == [0, 0, 1]
    # class 0: tp 106, fp 4, fn 0; class 1: tp 6, fp 0, fn 4
    torch.testing.assert_close(result.class_iou, torch.tensor([106 / 110, 6 / 10], dtype=torch.float64))
    assert result.accuracy == pytest.approx(112 / 116)


def test_over_clustering_by_iou_follows_the_reference():
    clusters, labels = _from_confusion(OVER)
    result = evaluate_cluster_assignment(clusters, labels, n_clusters=3, n_classes=2)
    assert result.mapping.tolist() == [0, 1, 1]
    # class 0: tp 100, fp 0, fn 6; class 1: tp 10, fp 6, fn 0
    assert result.miou == pytest.approx((100 / 106 + 10 / 16) / 2)
    assert result.accuracy == pytest.approx(110 / 116)


def test_one_to_one_with_extra_clusters_leaves_them_unmatched_and_counts_their_elements_as_missed():
    confusion = torch.tensor(OVER)
    mapping = match_clusters(confusion, many_to_one=False, score="count")
    assert mapping.tolist() == [0, -1, 1]
    clusters, labels = _from_confusion(OVER)
    result = evaluate_cluster_assignment(clusters, labels, 3, 2, many_to_one=False, score="count")
    # class 0: tp 100, fn 6; class 1: tp 6, fn 4
    torch.testing.assert_close(result.class_iou, torch.tensor([100 / 106, 6 / 10], dtype=torch.float64))


def test_a_class_nobody_has_scores_zero_in_the_mean():
    clusters, labels = torch.tensor([0, 0, 1]), torch.tensor([0, 0, 1])
    result = evaluate_cluster_assignment(clusters, labels, n_clusters=3, n_classes=3)
    assert result.class_iou.tolist()[:2] == [1.0, 1.0] and result.class_iou[2] == 0.0
    assert result.miou == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "clusters, labels, match",
    [
        (torch.tensor([0, 3]), torch.tensor([0, 1]), "clusters must lie in"),
        (torch.tensor([0, 1]), torch.tensor([0, 2]), "labels must lie in"),
        (torch.tensor([0, 1, 1]), torch.tensor([0, 1]), "same number of elements"),
        (torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), "integer"),
    ],
)
def test_bad_input_is_refused(clusters, labels, match):
    with pytest.raises(ValueError, match=match):
        cluster_confusion_matrix(clusters, labels, n_clusters=2, n_classes=2)


def test_unknown_score_is_refused():
    with pytest.raises(ValueError, match="score"):
        match_clusters(torch.eye(2, dtype=torch.long), score="dice")
