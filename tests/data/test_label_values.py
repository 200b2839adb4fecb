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


def _label(values, name="masks/case_7.png"):
    return MetaTensor(torch.tensor([values], dtype=torch.float32), meta={"filename_or_obj": name})


def test_class_index_label_at_the_8bit_threshold_names_file_values_and_option():
    # a {0, 1} mask (as MONAI Label saves it) binarised with foreground = value > 127 would be all background
    label = _label([[0.0, 1.0], [1.0, 0.0]])
    with pytest.raises(DataFileError, match=r"masks/case_7\.png.*values \{0, 1\}.*127.*label_threshold"):
        CheckLabelValuesd(keys="label", max_channels=3, foreground_threshold=127)({"label": label})


def test_class_index_label_passes_with_a_threshold_below_its_foreground():
    label = _label([[0.0, 1.0], [1.0, 0.0]])
    assert CheckLabelValues(foreground_threshold=0)(label) is label


def test_erased_label_is_refused_even_where_empty_labels_are_allowed():
    label = _label([[0.0, 1.0], [0.0, 0.0]])
    with pytest.raises(DataFileError, match="label_threshold"):
        CheckLabelValues(foreground_threshold=127, allow_empty=True)(label)


def test_empty_label_is_refused_naming_the_allow_option():
    label = _label([[0.0, 0.0], [0.0, 0.0]], name="masks/no_fluid.png")
    with pytest.raises(DataFileError, match=r"masks/no_fluid\.png.*empty.*allow_empty_labels"):
        CheckLabelValues(foreground_threshold=0)(label)


def test_empty_label_passes_where_empty_labels_are_allowed():
    label = _label([[0.0, 0.0], [0.0, 0.0]])
    assert CheckLabelValues(foreground_threshold=0, allow_empty=True)(label) is label


def test_foreground_check_uses_the_channel_mean_of_a_grey_rgb_label_like_binarize_label():
    # channel means 130 and 0: BinarizeLabel(threshold=127) keeps the first pixel, so the label is not empty
    label = torch.tensor([[[130.0, 0.0]], [[128.0, 0.0]], [[132.0, 0.0]]])
    assert CheckLabelValues(max_channels=3, foreground_threshold=127)(label) is label
    # channel means 126 and 0: nothing above 127
    with pytest.raises(DataFileError, match=r"values \{0, 124, 126, 128\}"):
        CheckLabelValues(max_channels=3, foreground_threshold=127)(torch.tensor([[[126.0, 0]], [[124.0, 0]], [[128.0, 0]]]))


def test_without_foreground_threshold_an_empty_label_passes_as_before():
    label = torch.zeros(1, 2, 2)
    assert CheckLabelValues(allowed={0, 255})(label) is label
