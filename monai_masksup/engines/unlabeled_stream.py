"""Endless batches from a data loader that cycles independently of the engine's own loader."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

from torch.utils.data.distributed import DistributedSampler

__all__ = ["UnlabeledStream", "passes_per_epoch"]


class UnlabeledStream:
    """
    Batches of an extra data loader (unlabelled images of a semi-supervised trainer) for as long as they are
    asked for: the loader is iterated again whenever it is exhausted, whatever the length of the engine's own
    (labelled) loader and the epoch length.

    Every epoch starts a fresh pass (:meth:`start_epoch`), so the position in the stream depends only on the
    epoch and the number of batches drawn in it: a run resumed from a checkpoint at an epoch boundary draws the
    same batches as a run that was never interrupted. With the default epoch length of a semi-supervised
    trainer (one pass over the unlabelled loader) this is the reference's endless sampler.

    Under ``torch.distributed`` a ``DistributedSampler`` of the loader gets ``set_epoch`` before every pass, with
    a number unique to the epoch and the pass (``((epoch - 1) * passes_per_epoch + pass) * stride + offset``),
    so every pass is shuffled differently; two streams over the same data set (CutMix's two unlabelled batches)
    take ``stride=2`` and offsets 0 and 1 so that they never draw the same order.

    Args:
        loader: an iterable of batches (a ``DataLoader``).
        name: the loader's name in error messages.
        passes_per_epoch: an upper bound of the passes started in one epoch (for the sampler epochs).
        stride, offset: see above.
    """

    def __init__(self, loader: Iterable, name: str, passes_per_epoch: int = 1, stride: int = 1, offset: int = 0):
        if not isinstance(loader, Iterable):
            raise TypeError(f"{name} must be an iterable of batches (a DataLoader), got {type(loader).__name__}.")
        self.loader = loader
        self.name = name
        self.passes_per_epoch = max(1, int(passes_per_epoch))
        self.stride = int(stride)
        self.offset = int(offset)
        self._iterator: Iterator | None = None
        self._epoch = 1
        self._passes = 0

    def start_epoch(self, epoch: int) -> None:
        """Drop the current pass; the next batch starts a new one, numbered from the start of ``epoch`` (1-based)."""
        self._epoch = int(epoch)
        self._passes = 0
        self._iterator = None

    def sampler_epoch(self) -> int:
        """The number given to the sampler's ``set_epoch`` for the pass about to start."""
        return ((self._epoch - 1) * self.passes_per_epoch + self._passes) * self.stride + self.offset

    def next(self) -> Any:
        """
        Return the next batch, starting a new pass over the loader when needed.

        Raises:
            ValueError: when the loader gives no batch at all.
        """
        if self._iterator is not None:
            try:
                return next(self._iterator)
            except StopIteration:
                pass
        self._begin_pass()
        try:
            return next(self._iterator)  # type: ignore[arg-type]
        except StopIteration:
            raise ValueError(f"{self.name} gave no batch: it is empty (or drops its only, incomplete batch).") from None

    def _begin_pass(self) -> None:
        sampler = getattr(self.loader, "sampler", None)
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(self.sampler_epoch())
        self._passes += 1
        self._iterator = iter(self.loader)


def passes_per_epoch(loader: Iterable, draws: int) -> int:
    """An upper bound of the passes over ``loader`` started in one epoch of ``draws`` batches (the
    ``passes_per_epoch`` argument of :class:`UnlabeledStream`).

    Args:
        loader: the stream's data loader; one without a length gets a bound of 1,000,000.
        draws: batches drawn from the stream in one epoch.

    Returns:
        ``ceil(draws / len(loader)) + 1``, at least 1.
    """
    try:
        length = len(loader)  # type: ignore[arg-type]
    except TypeError:
        return 1_000_000
    return max(1, math.ceil(draws / max(1, length)) + 1)
