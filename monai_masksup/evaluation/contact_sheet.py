"""Contact sheet: a PNG grid of test cases (rows) by views such as image, label and prediction (columns)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from monai_masksup.evaluation.image_grid import display_panel, tile_grid

__all__ = ["make_contact_sheet", "to_display_uint8"]

#: pixels above the first row that hold the column titles.
TITLE_HEIGHT = 18


def to_display_uint8(array: np.ndarray | torch.Tensor) -> np.ndarray:
    """A channel-first 2D image as a displayable uint8 array, scaled as in :py:func:`~.image_grid.display_panel`.

    Args:
        array: ``(H, W)`` or ``(C, H, W)``; one channel is shown grey, two by the foreground channel, three or
            more as RGB. Values in [0, 1] are kept, others min-max stretched (a constant image becomes zeros).

    Returns:
        uint8 ``(H, W)`` for a grey panel, ``(H, W, 3)`` for an RGB one.

    Raises:
        ValueError: when ``array`` is not 2D or 3D.
    """
    rgb = array.ndim == 3 and array.shape[0] >= 3
    shown = display_panel(array)
    data = shown.permute(1, 2, 0).numpy() if rgb else shown[0].numpy()
    return np.clip(np.rint(data * 255.0), 0, 255).astype(np.uint8)


def make_contact_sheet(
    rows: Sequence[Sequence[np.ndarray | torch.Tensor]],
    path: str | os.PathLike,
    column_titles: Sequence[str] | None = None,
    tile_size: tuple[int, int] | None = None,
    gap: int = 4,
) -> Path:
    """Save a grid of images as one PNG: a row per case, a column per view, on white, with column titles.

    The tiles are drawn by :py:func:`~monai_masksup.evaluation.image_grid.tile_grid`, the renderer of the
    TensorBoard grids, so a panel looks the same in both.

    Args:
        rows: ``rows[r][c]`` is a ``(H, W)`` or ``(C, H, W)`` image; every row has the same length.
        path: output PNG file; its folder is created when missing.
        column_titles: optional title per column, written above the first row.
        tile_size: ``(width, height)`` of each tile; defaults to the size of the first image, enlarged by
            an integer factor to at least 96 pixels on its short side.
        gap: pixels between tiles.

    Returns:
        the path written.

    Raises:
        ValueError: when ``rows`` is empty, rows differ in length, or titles do not match the columns.
    """
    if len(rows) == 0 or len(rows[0]) == 0:
        raise ValueError("rows: the contact sheet needs at least one row with one image.")
    n_cols = len(rows[0])
    if column_titles is not None and len(column_titles) != n_cols:
        raise ValueError(f"column_titles: expected {n_cols} titles (one per column), got {len(column_titles)}.")
    if tile_size is None:
        # small test images are enlarged so that the column titles fit above them
        height, width = display_panel(rows[0][0]).shape[-2:]
        scale = max(1, -(-96 // min(width, height)))
        tile_size = (width * scale, height * scale)
    grid = tile_grid(rows, tile_size=(tile_size[1], tile_size[0]), padding=gap, background=1.0)
    pixels = np.clip(np.rint(grid.permute(1, 2, 0).numpy() * 255.0), 0, 255).astype(np.uint8)
    title_h = TITLE_HEIGHT if column_titles else 0
    sheet = Image.new("RGB", (pixels.shape[1], pixels.shape[0] + title_h), "white")
    sheet.paste(Image.fromarray(pixels), (0, title_h))
    if column_titles:
        draw, font = ImageDraw.Draw(sheet), ImageFont.load_default()
        for col, title in enumerate(column_titles):
            draw.text((gap + col * (tile_size[0] + gap) + 2, 3), str(title), fill="black", font=font)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
