"""Scalars to log from a training engine's output: the total loss, every loss term and the learning rate."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from numbers import Real
from typing import Any

import torch
from monai.utils import CommonKeys

from monai_masksup.keys import PluginKeys

__all__ = ["LOSS_TERM_PREFIX", "MASKSUP_LOSS_KEYS", "from_engine_scalars"]

#: keys of ``MaskSupTrainer``'s ``engine.state.output`` that hold the total loss and its three components.
MASKSUP_LOSS_KEYS: tuple[str, ...] = (
    CommonKeys.LOSS,
    PluginKeys.LOSS_SEG,
    PluginKeys.LOSS_CONTEXT,
    PluginKeys.LOSS_TASK_SIM,
)

#: prefix of the loss terms in an engine's output: the engines log each term of
#: :py:meth:`monai_masksup.losses.LossComponents.loss_components` as ``"loss_" + name``.
LOSS_TERM_PREFIX = f"{CommonKeys.LOSS}_"


def _is_scalar(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.numel() == 1
    return isinstance(value, Real) and not isinstance(value, bool)


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
    scalar, so one handler logs the total loss, each loss term and the learning rate.

    Besides ``keys``, every scalar entry whose name starts with ``"loss_"`` (:data:`LOSS_TERM_PREFIX`, the
    engines' names of :py:meth:`~monai_masksup.losses.LossComponents.loss_components`) is logged, so a loss with
    other terms than MaskSup's is logged without listing them; non-scalar ``loss_*`` entries are left out.

    Args:
        keys: output keys that must be logged; the output may be a dictionary or a decollated list of
            dictionaries (then the first item is read, scalars are the same in every item).
        optimizer: when given, the learning rate of its first parameter group is added as ``lr_name``.
        lr_name: name of the learning-rate entry.

    Returns:
        a callable ``output -> dict[str, float]``.

    Raises:
        KeyError: (from the returned callable) when the engine output has no entry for one of ``keys``.
    """
    keys = tuple(str(key) for key in keys)

    def _transform(output: Any) -> dict[str, float]:
        item = output[0] if isinstance(output, (list, tuple)) else output
        if not isinstance(item, Mapping):
            raise TypeError(f"from_engine_scalars: expected a dict engine output, got {type(item).__name__}.")
        scalars: dict[str, float] = {}
        for key in keys:
            if key not in item:
                raise KeyError(f"from_engine_scalars: engine output has no {key!r}; it has {sorted(item)}.")
            scalars[key] = _as_float(item[key], key)
        for key, value in item.items():
            if isinstance(key, str) and key.startswith(LOSS_TERM_PREFIX) and key not in scalars and _is_scalar(value):
                scalars[str(key)] = _as_float(value, key)
        if optimizer is not None:
            scalars[lr_name] = float(optimizer.param_groups[0]["lr"])
        return scalars

    return _transform
