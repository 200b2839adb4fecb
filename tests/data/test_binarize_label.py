from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_masksup.data import BinarizeLabel, BinarizeLabeld, DataFileError


def test_jpeg_noise_is_thresholded_above_127():
    label = torch.tensor([[[0.0, 3.0, 127.0, 128.0, 250.0]]])
    out = BinarizeLabel(threshold=127)(label)
    assert out.tolist() == [[[0.0, 0.0, 0.0, 1.0, 1.0]]]
    assert out.dtype == torch.float32


def test_instance_map_becomes_foreground_with_threshold_zero():
    instances = np.array([[[0, 1, 2], [3, 0, 17]]], dtype=np.uint8)
    out = BinarizeLabel(threshold=0)(instances)
    assert isinstance(out, np.ndarray)
    assert out.tolist() == [[[0, 1, 1], [1, 0, 1]]]


def test_grey_rgb_label_collapses_to_one_channel_and_keeps_meta():
    grey = torch.tensor([[10.0, 200.0], [130.0, 90.0]])
    label = MetaTensor(torch.stack([grey, grey + 2, grey - 3]), meta={"filename_or_obj": "masks/a.jpg"})
    out = BinarizeLabel(threshold=127)(label)
    assert out.shape == (1, 2, 2)
    assert out.meta["filename_or_obj"] == "masks/a.jpg"
    assert out[0].tolist() == [[0.0, 1.0], [1.0, 0.0]]


def test_colour_label_is_refused_with_its_file_name():
    colour = torch.zeros(3, 2, 2)
    colour[0, 0, 0] = 255.0  # a red class pixel
    label = MetaTensor(colour, meta={"filename_or_obj": "labels/colour_7.png"})
    with pytest.raises(DataFileError, match=r"labels/colour_7\.png.*3 channels"):
        BinarizeLabel(threshold=127)(label)


def test_dictionary_version_binarises_only_its_keys():
    data = {"image": torch.full((1, 2, 2), 200.0), "label": torch.tensor([[[0.0, 255.0], [255.0, 0.0]]])}
    out = BinarizeLabeld(keys="label", threshold=127)(data)
    assert out["label"].tolist() == [[[0.0, 1.0], [1.0, 0.0]]]
    assert torch.equal(out["image"], data["image"])
