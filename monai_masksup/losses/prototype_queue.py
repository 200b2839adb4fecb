"""A first-in first-out memory bank of past object prototypes: MaskContrast's negatives."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.utils import evenly_divisible_all_gather
from torch import nn

__all__ = ["PrototypeQueue"]


class PrototypeQueue(nn.Module):
    """
    A FIFO queue of ``size`` L2-normalised prototypes of ``dim`` dimensions, the negatives of MoCo (He et al.,
    CVPR 2020) as MaskContrast (Van Gansbeke et al., ICCV 2021) uses them.

    The state is two buffers, so ``state_dict`` / ``load_state_dict`` (a checkpoint's extra state) save and
    restore it and ``.to(device)`` moves it:

    - ``queue``: ``(dim, size)``, one prototype per column, the reference's layout; starts as random unit columns
      (drawn from the global torch random state: ``monai.utils.set_determinism`` seeds it).
    - ``queue_ptr``: ``(1,)`` int64, the column the next prototype is written to.

    :meth:`enqueue` gathers the prototypes of every rank under ``torch.distributed`` (MONAI's
    ``evenly_divisible_all_gather``; the identity in a single process) and writes them from ``queue_ptr`` on,
    wrapping around the end. With ``size`` divisible by the global batch, as the reference requires, this is the
    reference's update exactly; other sizes are accepted, the oldest columns are still the ones replaced.

    Args:
        dim: prototype dimensions (the embedding head's channels).
        size: number of prototypes kept, ``K`` (the reference uses a multiple of the global batch size).

    Raises:
        ValueError: when ``dim`` or ``size`` is not a positive integer.
    """

    queue: torch.Tensor
    queue_ptr: torch.Tensor

    def __init__(self, dim: int, size: int) -> None:
        super().__init__()
        if int(dim) < 1 or int(size) < 1:
            raise ValueError(f"PrototypeQueue: `dim` and `size` must be positive integers, got {dim}, {size}.")
        self.dim, self.size = int(dim), int(size)
        self.register_buffer("queue", F.normalize(torch.randn(self.dim, self.size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    def negatives(self) -> torch.Tensor:
        """
        Returns:
            the current queue ``(dim, size)``, detached (a copy: a later :meth:`enqueue` does not change it).
        """
        return self.queue.detach().clone()

    @torch.no_grad()
    def enqueue(self, prototypes: torch.Tensor) -> None:
        """
        Replace the oldest columns by ``prototypes`` (those of every rank under ``torch.distributed``).

        Args:
            prototypes: ``(N, dim)``, one prototype per row (L2-normalised by the caller).

        Raises:
            ValueError: when ``prototypes`` is not ``(N, dim)``, or more prototypes arrive at once (all ranks
                together) than the queue holds.
        """
        if prototypes.ndim != 2 or prototypes.shape[1] != self.dim:
            raise ValueError(
                f"PrototypeQueue.enqueue: prototypes must be (N, {self.dim}), got {tuple(prototypes.shape)}."
            )
        gathered = evenly_divisible_all_gather(prototypes.detach().contiguous(), concat=True)
        count = gathered.shape[0]
        if count > self.size:
            raise ValueError(
                f"PrototypeQueue.enqueue: {count} prototypes (all ranks) do not fit a queue of size {self.size}; "
                "use a queue size that is a multiple of the global batch size."
            )
        ptr = int(self.queue_ptr[0])
        columns = (ptr + torch.arange(count, device=self.queue.device)) % self.size
        self.queue[:, columns] = gathered.to(self.queue).T
        self.queue_ptr[0] = (ptr + count) % self.size

    def extra_repr(self) -> str:
        return f"dim={self.dim}, size={self.size}"
