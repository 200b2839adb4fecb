"""Tests of restricted_pseudo_labels: weak labels remove classes from the argmax."""

from __future__ import annotations

import pytest
import torch

from monai_masksup.engines import restricted_pseudo_labels

# one image, 4 classes, 1 x 3 pixels; argmax per pixel: 2, 3, 1; second best: 0, 1, 0
LOGITS = torch.tensor(
    [[[[1.0, 0.0, 2.0]], [[0.0, 2.0, 3.0]], [[3.0, 0.0, 0.0]], [[0.0, 4.0, 0.0]]]]
)


def test_without_weak_labels_it_is_the_argmax():
    assert restricted_pseudo_labels(LOGITS).tolist() == [[[[2, 3, 1]]]]


def test_absent_classes_of_the_image_label_fall_to_the_best_allowed_class():
    # image label: only class 1 (and the background) present -> pixel 0 loses class 2 (-> 0), pixel 1 loses 3 (-> 1)
    image_labels = torch.tensor([[1, 1, 0, 0]])
    assert restricted_pseudo_labels(LOGITS, image_labels=image_labels).tolist() == [[[[0, 1, 1]]]]


def test_background_is_allowed_even_when_the_image_label_omits_it():
    image_labels = torch.tensor([[0, 0, 0, 0]])
    assert restricted_pseudo_labels(LOGITS, image_labels=image_labels).tolist() == [[[[0, 0, 0]]]]


def test_pixels_outside_the_boxes_of_a_class_cannot_take_it():
    # class 3's box covers pixel 1 only; class 2's box covers nothing; class 1 is unrestricted
    box_mask = torch.ones(1, 4, 1, 3)
    box_mask[0, 2] = 0
    box_mask[0, 3] = torch.tensor([[0.0, 1.0, 0.0]])
    assert restricted_pseudo_labels(LOGITS, box_mask=box_mask).tolist() == [[[[0, 3, 1]]]]
    # both restrictions together: class 3 absent from the image label although its box is there
    both = restricted_pseudo_labels(LOGITS, image_labels=torch.tensor([[1, 1, 1, 0]]), box_mask=box_mask)
    assert both.tolist() == [[[[0, 1, 1]]]]


def test_weak_labels_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match="image_labels"):
        restricted_pseudo_labels(LOGITS, image_labels=torch.ones(1, 3))
    with pytest.raises(ValueError, match="box_mask"):
        restricted_pseudo_labels(LOGITS, box_mask=torch.ones(1, 4, 3, 1))
