"""How many DataLoader worker processes a bundle starts by default."""

from __future__ import annotations

import os

__all__ = ["default_num_workers"]


def default_num_workers(limit: int = 4) -> int:
    """The CPUs this process may run on, capped at ``limit``: the bundles' default ``num_workers``.

    PyTorch's ``DataLoader`` warns when ``num_workers`` exceeds the CPUs the process may use (its affinity
    mask, which in a container or under ``taskset`` is smaller than ``os.cpu_count()``); counting the same
    way keeps a 2-core machine free of that warning while a larger one still gets ``limit`` workers.

    Args:
        limit: the most workers to start (more rarely speed up 2D loading and cost memory).

    Returns:
        an integer in ``[1, limit]``.

    Raises:
        ValueError: when ``limit`` is below 1.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}.")
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity mask
        cpus = os.cpu_count() or 1
    return max(1, min(limit, cpus))
