"""The one image-grid renderer of the plugin: panels of images, masks and predictions tiled in rows and columns.

Used by the TensorBoard image grid (:py:class:`monai_masksup.handlers.TensorBoardImageGrid`) and the PNG contact
sheet (:py:func:`monai_masksup.evaluation.make_contact_sheet`), so that a panel looks the same in both. MONAI's
``monai.visualize`` writes one image (or a 3D animation) per TensorBoard tag; it has no side-by-side grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.utils import convert_to_tensor

__all__ = ["display_panel", "tile_grid"]


def display_panel(panel: np.ndarray | torch.Tensor, sigmoid: bool = False) -> torch.Tensor:
    """
    Map one 2D panel to a 3-channel float image in [0, 1].

    Masks and probabilities (values already in [0, 1]) are shown as they are, so that an all-foreground mask
    is white and an empty one black; any other panel (an image in [-1, 1] or [0, 255]) is min-max stretched
    to [0, 1] on its own, a constant one becoming black.

    Args:
        panel: ``(H, W)`` or channel-first ``(C, H, W)``; one channel is shown grey, two (background and
            foreground of a binary output) by the foreground channel, three or more by the first three as RGB.
        sigmoid: apply a sigmoid first (the panel holds logits).

    Returns:
        float32 tensor ``(3, H, W)`` on the CPU.

    Raises:
        ValueError: when ``panel`` is not 2D or 3D.
    """
    data = convert_to_tensor(panel, track_meta=False).detach().float().cpu()
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3:
        raise ValueError(f"panel: expected (H, W) or channel-first (C, H, W), got shape {tuple(data.shape)}.")
    if sigmoid:
        data = torch.sigmoid(data)
    else:
        lo, hi = data.min(), data.max()
        if lo < 0.0 or hi > 1.0:
            data = (data - lo) / (hi - lo) if hi > lo else torch.zeros_like(data)
    if data.shape[0] == 1:
        data = data.expand(3, -1, -1)
    elif data.shape[0] == 2:
        data = data[1:2].expand(3, -1, -1)
    else:
        data = data[:3]
    return data.clamp(0.0, 1.0)


def tile_grid(
    rows: Sequence[Sequence[np.ndarray | torch.Tensor]],
    sigmoid: Sequence[bool] | None = None,
    tile_size: tuple[int, int] | None = None,
    padding: int = 2,
    background: float = 0.0,
) -> torch.Tensor:
    """
    Tile 2D panels into one RGB grid: ``rows[r][c]`` is drawn in row ``r``, column ``c``.

    Args:
        rows: panels as accepted by :py:func:`display_panel`; every row has the same length.
        sigmoid: per column, whether its panels hold logits; ``None`` for none.
        tile_size: ``(height, width)`` of every tile; panels of another size are resized (nearest neighbour,
            so masks stay crisp). ``None`` uses the first panel's size.
        padding: pixels between tiles and around the grid.
        background: grey level of the padding, 0 (black) to 1 (white).

    Returns:
        float32 tensor ``(3, n_rows * (h + padding) + padding, n_cols * (w + padding) + padding)`` in [0, 1].

    Raises:
        ValueError: when ``rows`` is empty, rows differ in length, or ``sigmoid`` does not match the columns.
    """
    if len(rows) == 0 or len(rows[0]) == 0:
        raise ValueError("rows: the grid needs at least one row with one panel.")
    n_cols = len(rows[0])
    for index, row in enumerate(rows):
        if len(row) != n_cols:
            raise ValueError(f"rows[{index}]: expected {n_cols} panels like rows[0], got {len(row)}.")
    sigmoid = [False] * n_cols if sigmoid is None else list(sigmoid)
    if len(sigmoid) != n_cols:
        raise ValueError(f"sigmoid: expected {n_cols} flags (one per column), got {len(sigmoid)}.")
    height, width = tile_size if tile_size is not None else display_panel(rows[0][0]).shape[-2:]
    grid = torch.full(
        (3, len(rows) * (height + padding) + padding, n_cols * (width + padding) + padding), float(background)
    )
    for r, row in enumerate(rows):
        for c, (panel, sig) in enumerate(zip(row, sigmoid)):
            tile = display_panel(panel, sig)
            if tuple(tile.shape[-2:]) != (height, width):
                tile = F.interpolate(tile[None], size=(height, width), mode="nearest")[0]
            top, left = padding + r * (height + padding), padding + c * (width + padding)
            grid[:, top : top + height, left : left + width] = tile
    return grid
