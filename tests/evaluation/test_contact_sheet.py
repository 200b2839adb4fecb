"""Contact sheet layout and the uint8 display scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from monai_masksup.evaluation import make_contact_sheet, to_display_uint8


def test_display_scaling_maps_min_to_0_and_max_to_255():
    image = torch.tensor([[-1.0, 0.5], [1.0, -1.0]]).reshape(1, 2, 2)
    # (0.5 - (-1)) / 2 * 255 = 191.25
    assert to_display_uint8(image).tolist() == [[0, 191], [255, 0]]
    assert to_display_uint8(np.full((3, 4, 4), 7.0)).shape == (4, 4, 3)
    assert not to_display_uint8(np.full((1, 4, 4), 7.0)).any()


def test_sheet_has_one_tile_per_row_and_column(tmp_path):
    label = torch.zeros(1, 8, 8)
    label[0, :4] = 1.0
    rgb = torch.rand(3, 8, 8)
    rows = [[rgb, label, torch.zeros(8, 8)], [rgb, 1 - label, torch.ones(1, 8, 8)]]
    path = make_contact_sheet(rows, str(tmp_path / "sheet.png"), column_titles=["a", "b", "c"], tile_size=(16, 16))
    with Image.open(path) as sheet:
        sheet = np.asarray(sheet.convert("RGB"))
    gap, title = 4, 18
    assert sheet.shape == (title + 2 * 16 + 3 * gap, 3 * 16 + 4 * gap, 3)
    # row 0, column 1: the top half of the label (upscaled x2) is white, the bottom half black
    top, left = title + gap, gap + 16 + gap
    assert (sheet[top : top + 8, left : left + 16] == 255).all()
    assert (sheet[top + 8 : top + 16, left : left + 16] == 0).all()
    # row 1, column 1: the inverted label
    top = title + gap + 16 + gap
    assert (sheet[top : top + 8, left : left + 16] == 0).all()


def test_sheet_rejects_ragged_rows(tmp_path):
    with pytest.raises(ValueError, match=r"rows\[1\]"):
        make_contact_sheet([[torch.zeros(4, 4)] * 2, [torch.zeros(4, 4)]], str(tmp_path / "x.png"))
