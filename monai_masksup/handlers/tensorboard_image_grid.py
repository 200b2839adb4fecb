"""TensorBoard image grid of one batch: image, masked image, prediction and label side by side."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from monai.utils import CommonKeys, IgniteInfo, convert_to_tensor, min_version, optional_import

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

from monai_masksup.evaluation.image_grid import tile_grid
from monai_masksup.keys import PluginKeys

__all__ = ["TensorBoardImageGrid", "image_grid"]


def image_grid(
    columns: Sequence[torch.Tensor], sigmoid: Sequence[bool] | None = None, padding: int = 2
) -> torch.Tensor:
    """
    Tile 2D batches into one RGB grid: one row per image of the batch, one column per entry of ``columns``;
    drawn by :py:func:`monai_masksup.evaluation.image_grid.tile_grid`, the renderer of the PNG contact sheet.

    Args:
        columns: batches ``(B, C, H, W)`` with the same ``B``; panels of another size are resized (nearest)
            to the first column's ``(H, W)``.
        sigmoid: per column, whether to apply a sigmoid (logits). Other panels with values in [0, 1] (masks,
            probabilities) are shown as they are; any other panel is min-max stretched to [0, 1].
        padding: pixels of black between panels.

    Returns:
        float tensor ``(3, rows * (H + padding) + padding, cols * (W + padding) + padding)`` in [0, 1].

    Raises:
        ValueError: when ``columns`` is empty, a batch is not 2D channel-first or batch sizes differ.
    """
    if len(columns) == 0:
        raise ValueError("image_grid: no columns to draw.")
    for col in columns:
        if col.ndim != 4:
            raise ValueError(f"image_grid: expected 2D batches (B, C, H, W), got shape {tuple(col.shape)}.")
    rows = columns[0].shape[0]
    if any(col.shape[0] != rows for col in columns):
        raise ValueError(f"image_grid: batch sizes differ: {[col.shape[0] for col in columns]}.")
    return tile_grid([[col[r] for col in columns] for r in range(rows)], sigmoid=sigmoid, padding=padding)


class TensorBoardImageGrid:
    """
    Write a TensorBoard image grid of the last batch of an epoch: one row per image (``max_images`` at most),
    one column per key of ``engine.state.output`` (for a ``MaskSupTrainer``: image, masked image, prediction,
    label). Works with a trainer and with an evaluator (keys missing from the output are left out, with one
    warning). The global step is ``engine.state.epoch``, which for a MONAI evaluator run by
    ``ValidationHandler`` is the trainer's epoch.

    Args:
        summary_writer: an existing ``SummaryWriter``; when ``None`` one is created in ``log_dir``.
        log_dir: TensorBoard folder when ``summary_writer`` is ``None``.
        keys: output keys, one grid column each.
        sigmoid_keys: keys holding logits, shown through a sigmoid; the others are shown as they are when their
            values lie in [0, 1] (masks), else min-max stretched to [0, 1] per panel (images).
        max_images: rows of the grid.
        interval: write every ``interval`` epochs (or iterations when ``epoch_level`` is ``False``).
        epoch_level: epoch-level or iteration-level writing.
        tag: TensorBoard tag of the grid.

    Raises:
        ValueError: when ``keys`` is empty or ``max_images`` / ``interval`` is not positive.
    """

    def __init__(
        self,
        summary_writer: Any | None = None,
        log_dir: str = "./runs",
        keys: Sequence[str] = (CommonKeys.IMAGE, PluginKeys.IMAGE_MASKED, CommonKeys.PRED, CommonKeys.LABEL),
        sigmoid_keys: Sequence[str] = (CommonKeys.PRED, PluginKeys.PRED_MASKED),
        max_images: int = 4,
        interval: int = 1,
        epoch_level: bool = True,
        tag: str = "images",
    ) -> None:
        if len(keys) == 0:
            raise ValueError("TensorBoardImageGrid: `keys` must name at least one output key.")
        if max_images < 1 or interval < 1:
            raise ValueError(
                f"TensorBoardImageGrid: `max_images` and `interval` must be >= 1, got {max_images}, {interval}."
            )
        if summary_writer is None:
            from torch.utils.tensorboard import SummaryWriter

            summary_writer = SummaryWriter(log_dir=log_dir)
            self._owns_writer = True
        else:
            self._owns_writer = False
        self.writer = summary_writer
        self.keys = tuple(str(key) for key in keys)
        self.sigmoid_keys = {str(key) for key in sigmoid_keys}
        self.max_images = int(max_images)
        self.interval = int(interval)
        self.epoch_level = epoch_level
        self.tag = tag
        self._warned_missing: set[str] = set()
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        """Register the grid writer on ``engine`` (epoch or iteration completed, every ``interval``)."""
        event = Events.EPOCH_COMPLETED if self.epoch_level else Events.ITERATION_COMPLETED
        engine.add_event_handler(event(every=self.interval), self)

    def _column(self, output: Any, key: str) -> torch.Tensor | None:
        if isinstance(output, (list, tuple)):
            items = [item[key] for item in output[: self.max_images] if isinstance(item, Mapping) and key in item]
            if not items:
                return None
            return torch.stack([convert_to_tensor(item, track_meta=False).detach() for item in items])
        if isinstance(output, Mapping) and key in output:
            return convert_to_tensor(output[key], track_meta=False).detach()[: self.max_images]
        return None

    def __call__(self, engine: Engine) -> None:
        """Draw the grid of ``engine.state.output`` and write it to TensorBoard."""
        columns, sigmoid = [], []
        for key in self.keys:
            col = self._column(engine.state.output, key)
            if col is None:
                if key not in self._warned_missing:
                    self._warned_missing.add(key)
                    self.logger.warning(f"TensorBoardImageGrid: engine output has no {key!r}; column left out.")
                continue
            columns.append(col.float().cpu())
            sigmoid.append(key in self.sigmoid_keys)
        if not columns:
            return
        step = engine.state.epoch if self.epoch_level else engine.state.iteration
        self.writer.add_image(self.tag, image_grid(columns, sigmoid), global_step=step, dataformats="CHW")
        self.writer.flush()

    def close(self) -> None:
        """Close the writer when this handler created it."""
        if self._owns_writer:
            self.writer.close()
