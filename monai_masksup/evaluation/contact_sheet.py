"""Contact sheet: a grid of test cases (rows) by views such as image, label and prediction (columns)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont


def to_display_uint8(array: np.ndarray | torch.Tensor) -> np.ndarray:
    """A channel-first 2D image as a displayable uint8 array, scaled by its own min and max.

    Args:
        array: ``(H, W)`` or ``(C, H, W)``; one channel is shown grey, three as RGB, any other count
            by its first channel.

    Returns:
        uint8 ``(H, W)`` or ``(H, W, 3)``; a constant image becomes all zeros.

    Raises:
        ValueError: when ``array`` is not 2D or 3D.
    """
    data = array.detach().float().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array, np.float32)
    if data.ndim == 3:
        data = np.moveaxis(data, 0, -1) if data.shape[0] == 3 else data[0]
    if data.ndim != 2 and not (data.ndim == 3 and data.shape[-1] == 3):
        raise ValueError(f"image: expected (H, W) or channel-first (C, H, W), got shape {tuple(array.shape)}.")
    lo, hi = float(np.min(data)), float(np.max(data))
    scaled = (data - lo) / (hi - lo) if hi > lo else np.zeros_like(data)
    return np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)


def make_contact_sheet(
    rows: Sequence[Sequence[np.ndarray | torch.Tensor]],
    path: str | os.PathLike,
    column_titles: Sequence[str] | None = None,
    tile_size: tuple[int, int] | None = None,
    gap: int = 4,
) -> Path:
    """Save a grid of images as one PNG: a row per case, a column per view.

    Each image is scaled by its own min/max to uint8 (see :func:`to_display_uint8`) and resized
    (nearest neighbour, so masks stay crisp) to one tile size.

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
    for index, row in enumerate(rows):
        if len(row) != n_cols:
            raise ValueError(f"rows[{index}]: expected {n_cols} images like rows[0], got {len(row)}.")
    if column_titles is not None and len(column_titles) != n_cols:
        raise ValueError(f"column_titles: expected {n_cols} titles (one per column), got {len(column_titles)}.")
    tiles = [[Image.fromarray(to_display_uint8(item)).convert("RGB") for item in row] for row in rows]
    if tile_size is None:
        # small test images are enlarged so that the column titles fit above them
        width, height = tiles[0][0].size
        scale = max(1, -(-96 // min(width, height)))
        tile_size = (width * scale, height * scale)
    tile_w, tile_h = tile_size
    font = ImageFont.load_default()
    title_h = 18 if column_titles else 0
    sheet = Image.new(
        "RGB", (n_cols * tile_w + (n_cols + 1) * gap, title_h + len(rows) * tile_h + (len(rows) + 1) * gap), "white"
    )
    draw = ImageDraw.Draw(sheet)
    if column_titles:
        for col, title in enumerate(column_titles):
            draw.text((gap + col * (tile_w + gap) + 2, 3), str(title), fill="black", font=font)
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            if tile.size != (tile_w, tile_h):
                tile = tile.resize((tile_w, tile_h), Image.NEAREST)
            sheet.paste(tile, (gap + c * (tile_w + gap), title_h + gap + r * (tile_h + gap)))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
