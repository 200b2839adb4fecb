from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_masksup.data import CheckLabelValues, CheckLabelValuesd, DataFileError


def test_binary_label_passes_unchanged():
    label = torch.tensor([[[0.0, 255.0], [255.0, 0.0]]])
    assert CheckLabelValues(allowed={0, 255})(label) is label


def test_instance_map_where_binary_expected_is_named():
    label = MetaTensor(torch.tensor([[[0.0, 1.0], [2.0, 3.0]]]), meta={"filename_or_obj": "train_4_anno.bmp"})
    with pytest.raises(DataFileError, match=r"train_4_anno\.bmp.*values 1, 2, 3 outside"):
        CheckLabelValuesd(keys="label", allowed={0, 255})({"label": label})


def test_colour_label_where_one_channel_expected_is_named():
    label = MetaTensor(torch.zeros(3, 2, 2), meta={"filename_or_obj": "masks/rgb.png"})
    with pytest.raises(DataFileError, match=r"masks/rgb\.png.*3 channels"):
        CheckLabelValues(max_channels=1)(label)


def test_uint8_values_compare_exactly():
    label = np.array([[[0, 1, 1]]], dtype=np.uint8)
    assert CheckLabelValues(allowed={0, 1})(label) is label
    with pytest.raises(DataFileError, match="values 1 outside"):
        CheckLabelValues(allowed={0, 0.5})(label)
