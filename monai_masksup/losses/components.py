"""The contract between a loss with several terms and the engines that log them."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

__all__ = ["LossComponents"]


@runtime_checkable
class LossComponents(Protocol):
    """
    A loss whose unweighted terms of the last ``forward`` can be logged.

    The plugin's engines check ``isinstance(loss_function, LossComponents)`` after each loss evaluation and
    write every component to ``engine.state.output`` as the python float ``"loss_<name>"`` (e.g.
    ``MaskSupLoss`` gives ``loss_seg``, ``loss_context``, ``loss_task_sim``), so that ``StatsHandler`` and
    ``TensorBoardStatsHandler`` can log them with ``from_engine``. A loss without the method is logged as
    ``loss`` only.
    """

    def loss_components(self) -> dict[str, torch.Tensor]:
        """
        Returns:
            the unweighted terms of the last ``forward`` as detached scalar tensors, by name (without the
            ``loss_`` prefix). Empty before the first call.
        """
        ...
