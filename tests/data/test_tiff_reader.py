from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from monai.data import PILReader
from monai.transforms import LoadImage
from PIL import Image

from monai_masksup.data import DataFileError, TiffFileReader


def _grey_tagged_rgb_tiff(path, pixels):
    """Write RGB samples tagged BlackIsZero, as CVC-ClinicDB stores its frames."""
    tifffile.imwrite(path, pixels, photometric="minisblack", planarconfig="contig")


def test_colour_tiff_matches_pil_reader_on_the_same_pixels_as_png(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, size=(9, 14, 3), dtype=np.uint8)
    _grey_tagged_rgb_tiff(tmp_path / "f.tif", pixels)
    Image.fromarray(pixels).save(tmp_path / "f.png")
    from_tiff = LoadImage(reader=TiffFileReader(), image_only=True, ensure_channel_first=True)(tmp_path / "f.tif")
    from_png = LoadImage(reader=PILReader(), image_only=True, ensure_channel_first=True)(tmp_path / "f.png")
    assert from_tiff.shape == from_png.shape == (3, 14, 9)  # PIL convention: (C, W, H)
    assert torch.equal(from_tiff.as_tensor(), from_png.as_tensor())
    # pixel (row 2, column 5) of the file is at spatial index (5, 2)
    assert from_tiff[:, 5, 2].tolist() == pixels[2, 5].tolist()
    assert np.array_equal(from_tiff.meta["spatial_shape"], [14, 9])


def test_grey_tiff_matches_pil_reader(tmp_path):
    pixels = np.arange(6 * 10, dtype=np.uint8).reshape(6, 10)
    tifffile.imwrite(tmp_path / "g.tif", pixels)
    Image.fromarray(pixels).save(tmp_path / "g.png")
    from_tiff = LoadImage(reader=TiffFileReader, image_only=True, ensure_channel_first=True)(tmp_path / "g.tif")
    from_png = LoadImage(reader="PILReader", image_only=True, ensure_channel_first=True)(tmp_path / "g.png")
    assert from_tiff.shape == (1, 10, 6)
    assert torch.equal(from_tiff.as_tensor(), from_png.as_tensor())


def test_planar_tiff_is_returned_channels_last_before_channel_first(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, size=(3, 5, 7), dtype=np.uint8)  # (S, Y, X)
    tifffile.imwrite(tmp_path / "p.tif", pixels, photometric="rgb", planarconfig="separate")
    img = LoadImage(reader=TiffFileReader(), image_only=True, ensure_channel_first=True)(tmp_path / "p.tif")
    assert img.shape == (3, 7, 5)
    assert img[:, 6, 4].tolist() == pixels[:, 4, 6].tolist()


def test_reverse_indexing_off_keeps_row_major(tmp_path):
    pixels = np.random.default_rng(2).integers(0, 256, size=(4, 6, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "r.tif", pixels, photometric="rgb")
    array, meta = TiffFileReader(reverse_indexing=False).get_data(TiffFileReader().read(tmp_path / "r.tif"))
    assert np.array_equal(array, pixels)
    assert meta["original_channel_dim"] == -1


def test_verify_suffix_accepts_only_tiff():
    reader = TiffFileReader()
    assert reader.verify_suffix("a/1.tif") and reader.verify_suffix("a/1.TIFF")
    assert not reader.verify_suffix("a/1.png")


def test_damaged_tiff_is_named(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(DataFileError, match=r"bad\.tif"):
        TiffFileReader().read(tmp_path / "bad.tif")


def test_auto_selected_for_tif_while_pil_reads_png(tmp_path):
    pixels = np.random.default_rng(3).integers(0, 256, size=(5, 8, 3), dtype=np.uint8)
    _grey_tagged_rgb_tiff(tmp_path / "f.tif", pixels)
    Image.fromarray(pixels).save(tmp_path / "f.png")
    loader = LoadImage(reader=["PILReader", TiffFileReader], image_only=True, ensure_channel_first=True)
    assert torch.equal(loader(tmp_path / "f.tif").as_tensor(), loader(tmp_path / "f.png").as_tensor())
