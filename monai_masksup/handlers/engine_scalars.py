"""Scalars to log from a training engine's output: the MaskSup loss components and the learning rate."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

__all__ = ["MASKSUP_LOSS_KEYS", "from_engine_scalars"]

#: keys of ``MaskSupTrainer``'s ``engine.state.output`` that hold the total loss and its three components.
MASKSUP_LOSS_KEYS: tuple[str, ...] = ("loss", "loss_seg", "loss_context", "loss_task_sim")


def _as_float(value: Any, key: str) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"from_engine_scalars: output[{key!r}] is not a scalar (shape {tuple(value.shape)}).")
        return float(value.detach().item())
    return float(value)


def from_engine_scalars(
    keys: Sequence[str] = MASKSUP_LOSS_KEYS, optimizer: torch.optim.Optimizer | None = None, lr_name: str = "lr"
) -> Callable[[Any], dict[str, float]]:
    """
    Build an ``output_transform`` for ``monai.handlers.StatsHandler`` / ``TensorBoardStatsHandler`` that maps
    ``engine.state.output`` to ``{key: float}``; both handlers log every entry of such a dictionary as its own
    scalar, so one handler logs the total loss, each MaskSup loss component and the learning rate.

    Args:
        keys: output keys to log; the output may be a dictionary or a decollated list of dictionaries (then
            the first item is read, scalars are the same in every item).
        optimizer: when given, the learning rate of its first parameter group is added as ``lr_name``.
        lr_name: name of the learning-rate entry.

    Returns:
        a callable ``output -> dict[str, float]``.

    Raises:
        KeyError: (from the returned callable) when the engine output has no entry for one of ``keys``.
    """
    keys = tuple(keys)

    def _transform(output: Any) -> dict[str, float]:
        item = output[0] if isinstance(output, (list, tuple)) else output
        if not isinstance(item, Mapping):
            raise TypeError(f"from_engine_scalars: expected a dict engine output, got {type(item).__name__}.")
        scalars: dict[str, float] = {}
        for key in keys:
            if key not in item:
                raise KeyError(f"from_engine_scalars: engine output has no {key!r}; it has {sorted(item)}.")
            scalars[key] = _as_float(item[key], key)
        if optimizer is not None:
            scalars[lr_name] = float(optimizer.param_groups[0]["lr"])
        return scalars

    return _transform
