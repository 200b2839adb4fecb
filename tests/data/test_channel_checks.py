from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_masksup.data import DataFileError, EnsureRGB, EnsureRGBd


def test_rgb_passes_unchanged():
    img = torch.rand(3, 4, 5)
    assert EnsureRGB()(img) is img


def test_single_channel_image_is_refused_with_its_file_name():
    img = MetaTensor(torch.rand(1, 384, 288), meta={"filename_or_obj": "CVC-ClinicDB/Original/1.tif"})
    with pytest.raises(DataFileError, match=r"CVC-ClinicDB/Original/1\.tif.*1 channel.*TiffFileReader"):
        EnsureRGBd(keys="image")({"image": img})


def test_image_without_channel_axis_is_refused():
    with pytest.raises(DataFileError, match="1 channel"):
        EnsureRGB()(np.zeros((384, 288), np.float32))


def test_alpha_is_dropped():
    img = np.arange(4 * 2 * 2).reshape(4, 2, 2)
    assert np.array_equal(EnsureRGB()(img), img[:3])
    with pytest.raises(DataFileError, match="4 channel"):
        EnsureRGB(drop_alpha=False)(img)


def test_grey_to_rgb_repeats_the_channel_when_asked():
    img = torch.tensor([[[1.0, 2.0]]])
    assert EnsureRGB(grey_to_rgb=True)(img).tolist() == [[[1.0, 2.0]]] * 3
    assert EnsureRGB(grey_to_rgb=True)(img.numpy()).shape == (3, 1, 2)
