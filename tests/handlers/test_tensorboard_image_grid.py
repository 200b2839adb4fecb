"""TensorBoard image grids: tiling, display of masks and logits, absent keys."""

from __future__ import annotations

import torch
from ignite.engine import Engine

from monai_masksup.handlers.tensorboard_image_grid import TensorBoardImageGrid, image_grid


def test_image_grid_tiles_rows_and_columns():
    image = torch.full((2, 3, 4, 5), -1.0)
    image[:, :, 0, 0] = 1.0  # min-max stretch: this pixel 1, the rest 0
    logits = torch.zeros(2, 1, 4, 5)  # sigmoid(0) = 0.5
    grid = image_grid([image, logits], sigmoid=[False, True], padding=1)
    assert tuple(grid.shape) == (3, 2 * (4 + 1) + 1, 2 * (5 + 1) + 1)
    assert grid[:, 1, 1].tolist() == [1.0, 1.0, 1.0] and grid[:, 2, 2].tolist() == [0.0, 0.0, 0.0]
    assert torch.allclose(grid[:, 1:5, 7:12], torch.full((3, 4, 5), 0.5))
    assert grid[:, 0, :].abs().sum() == 0  # padding stays black


def test_image_grid_writer_skips_absent_keys():
    written = {}

    class _Writer:
        def add_image(self, tag, img, global_step, dataformats):
            written[tag] = (tuple(img.shape), global_step, dataformats)

        def flush(self):
            pass

    engine = Engine(lambda e, b: None)
    engine.state.epoch = 3
    engine.state.output = [{"image": torch.rand(3, 8, 8), "pred": torch.rand(1, 8, 8)} for _ in range(6)]
    TensorBoardImageGrid(summary_writer=_Writer(), keys=("image", "image_masked", "pred"), max_images=4, tag="t")(engine)
    assert written == {"t": ((3, 4 * 10 + 2, 2 * 10 + 2), 3, "CHW")}


def test_image_grid_shows_an_all_foreground_mask_white():
    image = torch.linspace(-1.0, 1.0, 16).reshape(1, 1, 4, 4)
    full_mask, empty_mask = torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    grid = image_grid([image, full_mask, empty_mask], padding=0)
    assert grid[:, 0, 0].tolist() == [0.0, 0.0, 0.0] and grid[:, 3, 3].tolist() == [1.0, 1.0, 1.0]
    assert torch.equal(grid[:, :, 4:8], torch.ones(3, 4, 4))  # a constant 1 mask is white, not black
    assert torch.equal(grid[:, :, 8:12], torch.zeros(3, 4, 4))


def test_default_grid_columns_are_image_masked_image_prediction_label():
    grid = TensorBoardImageGrid(summary_writer=object())
    assert grid.keys == ("image", "image_masked", "pred", "label")
    assert grid.sigmoid_keys == {"pred", "pred_masked"}
