from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_masksup.data import DataFileError, ImageLevelLabels, ImageLevelLabelsd


def test_classes_present_become_ones_and_ignored_pixels_do_not_count():
    label = torch.tensor([[[0, 3], [255, 3]]])
    assert ImageLevelLabels(num_classes=4)(label).tolist() == [1.0, 0.0, 0.0, 1.0]
    only_ignored_and_bg = np.array([[[0, 255]]])
    assert ImageLevelLabels(num_classes=2)(only_ignored_and_bg).tolist() == [1.0, 0.0]


def test_dictionary_version_writes_output_key():
    d = ImageLevelLabelsd("label", num_classes=2, output_key="classes")({"label": torch.ones(1, 2, 2)})
    assert d["classes"].tolist() == [0.0, 1.0] and d["label"].shape == (1, 2, 2)


def test_value_outside_classes_names_the_file():
    label = MetaTensor(torch.tensor([[[0.0, 4.0]]]), meta={"filename_or_obj": "/d/ref.mhd"})
    with pytest.raises(DataFileError, match=r"ref\.mhd' holds \[4\.0\], not class indices 0\.\.3"):
        ImageLevelLabels(num_classes=4)(label)
    with pytest.raises(DataFileError, match=r"holds \[255\.0\]"):
        ImageLevelLabels(num_classes=4, ignore_value=None)(torch.tensor([[[255.0]]]))
    with pytest.raises(ValueError, match="at least 2"):
        ImageLevelLabels(num_classes=1)
