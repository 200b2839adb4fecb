"""The one image-grid renderer: panel display rules, tiling, and the same pixels in TensorBoard and PNG sheets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from monai_masksup.evaluation import make_contact_sheet
from monai_masksup.evaluation.image_grid import display_panel, tile_grid
from monai_masksup.handlers.tensorboard_image_grid import image_grid


def test_two_channel_panel_shows_the_foreground_channel():
    one_hot = torch.stack([torch.ones(2, 2), torch.zeros(2, 2)])  # all background
    one_hot[:, 0, 0] = torch.tensor([0.0, 1.0])
    shown = display_panel(one_hot)
    assert shown.shape == (3, 2, 2)
    assert shown[:, 0, 0].tolist() == [1.0, 1.0, 1.0] and shown[:, 1, 1].tolist() == [0.0, 0.0, 0.0]


def test_tiles_are_resized_to_the_tile_size_on_the_background():
    grid = tile_grid([[torch.ones(1, 2, 2)]], tile_size=(4, 6), padding=1, background=1.0)
    assert grid.shape == (3, 4 + 2, 6 + 2)
    assert torch.equal(grid, torch.ones(3, 6, 8))  # a white mask on a white background


def test_ragged_rows_and_wrong_sigmoid_flags_are_rejected():
    with pytest.raises(ValueError, match=r"rows\[1\]"):
        tile_grid([[torch.zeros(2, 2)] * 2, [torch.zeros(2, 2)]])
    with pytest.raises(ValueError, match="sigmoid"):
        tile_grid([[torch.zeros(2, 2)] * 2], sigmoid=[True])


def test_contact_sheet_and_tensorboard_grid_draw_the_same_tiles(tmp_path):
    image = torch.linspace(-1.0, 1.0, 16).reshape(1, 1, 4, 4)  # stretched: -1 black, 1 white
    full_mask = torch.ones(1, 1, 4, 4)  # white in both, not stretched to black
    tensorboard = image_grid([image, full_mask], padding=4)
    path = make_contact_sheet([[image[0], full_mask[0]]], tmp_path / "sheet.png", tile_size=(4, 4), gap=4)
    with Image.open(path) as sheet:
        pixels = np.asarray(sheet.convert("RGB")).astype(np.float32) / 255.0
    for left in (4, 12):
        expected = tensorboard[:, 4:8, left : left + 4].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(pixels[4:8, left : left + 4], expected, atol=1 / 255)
    assert (pixels[4:8, 12:16] == 1.0).all()
