"""The clustering evaluation on synthetic embeddings of known structure and on hand-computed cases."""

from __future__ import annotations

import pytest
import torch

from monai_masksup.metrics import evaluate_pixel_clustering, evaluate_prototype_clustering, saliency_prototypes

N_CLASSES, DIM, SIZE = 3, 4, 8


def _synthetic(n_images: int = 30, seed: int = 0):
    """
    Images whose salient pixels embed near their class's axis (classes 0-2 on axes 0-2, noise 0.05) while the
    background of each image is a strong random vector (norm ~10): only the salient mask reveals the class.

    Returns:
        embeddings (N, DIM, SIZE, SIZE), masks (N, 1, SIZE, SIZE), classes (N,).
    """
    g = torch.Generator().manual_seed(seed)
    classes = torch.arange(n_images) % N_CLASSES
    classes = classes[torch.randperm(n_images, generator=g)]
    embeddings = torch.empty(n_images, DIM, SIZE, SIZE)
    masks = torch.zeros(n_images, 1, SIZE, SIZE)
    for i, c in enumerate(classes.tolist()):
        background = 5.0 * torch.randn(DIM, 1, 1, generator=g)
        embeddings[i] = background + 0.05 * torch.randn(DIM, SIZE, SIZE, generator=g)
        top, left = torch.randint(0, SIZE - 3, (2,), generator=g).tolist()
        masks[i, 0, top : top + 3, left : left + 4] = 1.0
        salient = torch.zeros(DIM, 1, 1)
        salient[c] = 1.0
        embeddings[i, :, top : top + 3, left : left + 4] = salient + 0.05 * torch.randn(DIM, 3, 4, generator=g)
    return embeddings, masks, classes


def test_prototype_is_the_normalised_weighted_sum_over_salient_pixels():
    embeddings = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [1.0, 1.0]]]])  # (1, 2, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    # salient pixels (0, 0) and (1, 0): sum (4, 1), norm sqrt(17)
    torch.testing.assert_close(saliency_prototypes(embeddings, mask), torch.tensor([[4.0, 1.0]]) / 17**0.5)
    # probabilities: 0.4 is under the threshold, 0.8 weighs its pixel -> 0.8 * (3, 1) + 1.0 * (1, 0) = (3.4, 0.8)
    probabilities = torch.tensor([[[[1.0, 0.4], [0.8, 0.0]]]])
    expected = torch.tensor([[3.4, 0.8]]) / (3.4**2 + 0.8**2) ** 0.5
    torch.testing.assert_close(saliency_prototypes(embeddings, probabilities), expected)


def test_prototypes_of_volumes():
    embeddings = torch.zeros(1, 2, 2, 2, 2)
    embeddings[0, 0, 0] = 3.0  # first slice embeds along axis 0, second along axis 1
    embeddings[0, 1, 1] = 1.0
    mask = torch.zeros(1, 1, 2, 2, 2)
    mask[0, 0, 0, 0, 0] = mask[0, 0, 1, 0, 0] = 1.0  # one voxel of each slice: sum (3, 1)
    torch.testing.assert_close(saliency_prototypes(embeddings, mask), torch.tensor([[3.0, 1.0]]) / 10**0.5)


def test_empty_mask_gives_a_zero_prototype():
    assert torch.equal(saliency_prototypes(torch.ones(1, 3, 2, 2), torch.zeros(1, 1, 2, 2)), torch.zeros(1, 3))


def test_image_level_clustering_recovers_the_classes_from_salient_prototypes():
    embeddings, masks, classes = _synthetic()
    prototypes = saliency_prototypes(embeddings, masks)
    result = evaluate_prototype_clustering(prototypes, classes, N_CLASSES, n_components=N_CLASSES - 1, seed=1)
    assert result.miou == 1.0 and result.accuracy == 1.0
    assert sorted(result.mapping.tolist()) == [0, 1, 2]


def test_image_level_clustering_without_the_mask_sees_only_the_background():
    # the whole-image mean is dominated by each image's random background: the classes are not recovered
    embeddings, _, classes = _synthetic()
    prototypes = saliency_prototypes(embeddings, torch.ones(len(classes), 1, SIZE, SIZE))
    result = evaluate_prototype_clustering(prototypes, classes, N_CLASSES, n_components=N_CLASSES - 1, seed=1)
    assert result.accuracy < 0.8


def test_over_clustering_of_prototypes_still_scores_one():
    embeddings, masks, classes = _synthetic(n_images=36, seed=2)
    prototypes = saliency_prototypes(embeddings, masks)
    result = evaluate_prototype_clustering(prototypes, classes, N_CLASSES, n_clusters=6, whiten=False, seed=0)
    assert result.mapping.shape == (6,) and set(result.mapping.tolist()) == {0, 1, 2}
    assert result.miou == 1.0


@pytest.mark.parametrize("n_clusters", [None, 5])
def test_pixel_level_clustering_of_synthetic_images_scores_one(n_clusters):
    embeddings, masks, classes = _synthetic()
    prototypes = saliency_prototypes(embeddings, masks)
    labels = masks.long() * (classes.view(-1, 1, 1, 1) + 1)  # background 0, class c -> c + 1
    result = evaluate_pixel_clustering(
        prototypes, masks, labels, N_CLASSES + 1, n_clusters=n_clusters, n_components=N_CLASSES - 1, seed=1
    )
    assert result.miou == 1.0 and result.accuracy == 1.0
    assert result.mapping[0] == 0  # the background prediction matched to the background class


def test_pixel_level_miou_of_a_hand_computed_case_with_images_of_different_sizes():
    # one foreground cluster: salient pixels predict 1, others 0.
    # image A (2 x 2): mask [[1, 1], [1, 0]], label [[1, 1], [0, 0]]; image B (1 x 3): mask [1, 0, 0], label [1, 1, 0]
    # confusion (predicted, class): predicted 0 -> [2, 1], predicted 1 -> [1, 3]; identity matching;
    # class 0: tp 2, fp 1, fn 1 -> 1/2; class 1: tp 3, fp 1, fn 1 -> 3/5; accuracy 5/7
    masks = [torch.tensor([[[1, 1], [1, 0]]]), torch.tensor([[[1, 0, 0]]])]
    labels = [torch.tensor([[[1, 1], [0, 0]]]), torch.tensor([[[1, 1, 0]]])]
    result = evaluate_pixel_clustering(torch.eye(2), masks, labels, n_classes=2)
    assert result.confusion.tolist() == [[2, 1], [1, 3]]
    torch.testing.assert_close(result.class_iou, torch.tensor([0.5, 0.6], dtype=torch.float64))
    assert result.miou == pytest.approx(0.55) and result.accuracy == pytest.approx(5 / 7)


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="batch and spatial size"):
        saliency_prototypes(torch.ones(2, 3, 4, 4), torch.ones(2, 1, 4, 5))
    with pytest.raises(ValueError, match="one label each"):
        evaluate_prototype_clustering(torch.ones(4, 3), torch.zeros(3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="one mask and one label map per prototype"):
        evaluate_pixel_clustering(torch.eye(2), [torch.ones(1, 2, 2)], [torch.ones(1, 2, 2)], 2)
