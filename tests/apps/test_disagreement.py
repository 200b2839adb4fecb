"""The teacher-student disagreement score of an image, by hand-computed probabilities (no MONAI Label needed)."""

from __future__ import annotations

import math

import pytest
import torch

from tests.apps.conftest import app_module

disagreement = app_module("disagreement")

LOG3 = math.log(3.0)  # sigmoid(ln 3) = 0.75


def test_one_channel_score_is_the_per_image_mean_of_twice_the_squared_probability_difference():
    student = torch.zeros(2, 1, 2, 2)
    student[1] = LOG3
    teacher = torch.zeros(2, 1, 2, 2)
    teacher[0, 0, 0, :] = LOG3  # image 0: half the pixels 0.5 vs 0.75, half agree
    teacher[1] = -LOG3  # image 1: 0.75 vs 0.25 everywhere
    scores = disagreement.teacher_student_disagreement(student, teacher)
    # image 0: (2 * 0.25**2 + 2 * 0.25**2 + 0 + 0) / 4; image 1: 2 * 0.5**2
    assert scores.shape == (2,)
    assert scores.tolist() == pytest.approx([0.0625, 0.5])


def test_two_channel_softmax_score_equals_the_one_channel_sigmoid_score_of_the_same_probabilities():
    student = torch.tensor([0.0, LOG3]).view(1, 2, 1, 1).expand(1, 2, 3, 3)
    teacher = torch.zeros(1, 2, 3, 3)
    # probabilities (0.25, 0.75) against (0.5, 0.5): 0.25**2 + 0.25**2
    assert disagreement.teacher_student_disagreement(student, teacher).tolist() == pytest.approx([0.125])


def test_agreeing_networks_score_zero():
    logits = torch.randn(3, 1, 4, 4, 4)
    assert disagreement.teacher_student_disagreement(logits, logits.clone()).tolist() == [0.0, 0.0, 0.0]
