"""Foreground probability and binarisation of 1-channel (sigmoid) and 2-channel (softmax) outputs."""

from __future__ import annotations

import math

import pytest
import torch

from monai_masksup.evaluation import binarise_foreground, foreground_channel, foreground_probability


def test_one_channel_logits_use_sigmoid_threshold():
    logits = torch.tensor([-2.0, -0.01, 0.0, 0.01, 3.0]).reshape(1, 1, 1, 5)
    prob = foreground_probability(logits)
    assert prob[0, 0, 0, 0].item() == pytest.approx(1 / (1 + math.exp(2.0)))
    # sigmoid(0) = 0.5 is not > 0.5
    assert binarise_foreground(logits).flatten().tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]


def test_two_channel_logits_use_softmax_channel_one():
    background = torch.zeros(1, 1, 1, 3)
    foreground = torch.tensor([-1.0, 0.0, 1.0]).reshape(1, 1, 1, 3)
    prob = foreground_probability(torch.cat([background, foreground], dim=1))
    assert prob.shape == (1, 1, 1, 3)
    # softmax of (0, f) at channel 1 = sigmoid(f)
    assert prob.flatten().tolist() == pytest.approx([1 / (1 + math.e), 0.5, 1 / (1 + math.exp(-1.0))])
    assert binarise_foreground(torch.cat([background, foreground], dim=1), threshold=0.6).flatten().tolist() == [
        0.0,
        0.0,
        1.0,
    ]


def test_three_channel_output_is_rejected():
    with pytest.raises(ValueError, match="1 or 2 channels"):
        foreground_probability(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="label"):
        foreground_channel(torch.zeros(1, 3, 4, 4), "label")
