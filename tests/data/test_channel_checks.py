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


def test_grey_jpeg_gets_a_jpeg_hint_not_the_tiff_one():
    img = MetaTensor(torch.rand(1, 64, 48), meta={"filename_or_obj": "Kvasir-SEG/images/cju0qkwl.jpg"})
    with pytest.raises(DataFileError, match=r"cju0qkwl\.jpg.*1 channel.*JPG file is stored as a grey") as e:
        EnsureRGB()(img)
    assert "TIFF" not in str(e.value)


def test_grey_tiff_read_by_monai_default_readers_points_to_tiff_file_reader():
    img = MetaTensor(torch.rand(1, 8, 8), meta={"filename_or_obj": "Original/7.TIF"})
    with pytest.raises(DataFileError, match=r"7\.TIF.*TiffFileReader"):
        EnsureRGB()(img)


def test_grey_tiff_read_by_tiff_file_reader_is_called_grey(tmp_path):
    import tifffile
    from monai.transforms import LoadImage

    from monai_masksup.data import TiffFileReader

    tifffile.imwrite(tmp_path / "3.tif", np.zeros((8, 6), np.uint8))
    img = LoadImage(reader=TiffFileReader(), image_only=True, ensure_channel_first=True)(tmp_path / "3.tif")
    with pytest.raises(DataFileError, match=r"3\.tif.*TIFF file holds one grey plane.*grey_to_rgb") as e:
        EnsureRGB()(img)
    assert "load it with" not in str(e.value)
