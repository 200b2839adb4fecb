"""Letting thread-pool workers finish their item before the interpreter shuts down after an error."""

from __future__ import annotations

import threading
import time
from multiprocessing.dummy import DummyProcess

__all__ = ["wait_for_pool_workers"]


def wait_for_pool_workers(timeout: float = 10.0) -> list[str]:
    """Wait until the worker threads of ``multiprocessing.pool.ThreadPool`` objects have finished.

    ``CacheDataset`` fills its cache with ``with ThreadPool(num_workers) as pool: pool.imap(...)``.
    When one item raises (a grey image refused by ``EnsureRGBd``, an unreadable file), leaving the
    ``with`` block calls ``pool.terminate()``, which for threads neither stops nor joins the workers:
    they finish the item they hold. The error reaches the top of ``python -m monai.bundle run`` at
    once and the interpreter shuts down while those daemon threads are still inside C++ code (image
    decoding, ``torch`` resampling); a daemon thread that wants the GIL back after shutdown started is
    ended with ``pthread_exit``, whose unwinding through ``noexcept`` C++ frames aborts the process:
    ``terminate called without an active exception`` and exit status 134 instead of 1. Joining the
    workers first lets the process exit normally. Workers of a pool that is still open wait for tasks
    forever, so the wait is bounded by ``timeout``.

    Args:
        timeout: the longest wait in seconds, for all workers together.

    Returns:
        the names of the worker threads still alive when the wait ended (empty when all finished).
    """
    deadline = time.monotonic() + timeout
    workers = [t for t in threading.enumerate() if isinstance(t, DummyProcess) and t is not threading.current_thread()]
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    return [worker.name for worker in workers if worker.is_alive()]
