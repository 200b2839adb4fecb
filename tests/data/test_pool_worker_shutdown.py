from __future__ import annotations

import threading
from multiprocessing.dummy import DummyProcess
from multiprocessing.pool import ThreadPool

import pytest

from monai_masksup.data import wait_for_pool_workers


def test_workers_of_a_pool_left_by_an_error_are_joined():
    started, release = threading.Event(), threading.Event()

    def work(i):
        if i == 0:
            raise ValueError("bad item")
        started.set()
        release.wait(5)
        return i

    with pytest.raises(ValueError, match="bad item"):
        with ThreadPool(2) as pool:  # as CacheDataset fills its cache: terminate() on the way out, no join
            results = pool.imap(work, range(4))
            started.wait(5)
            next(results)
    busy = [t for t in threading.enumerate() if isinstance(t, DummyProcess) and t.is_alive()]
    assert busy, "the pool's terminate() left no worker running: the case this guards is not reproduced"
    release.set()
    assert wait_for_pool_workers(timeout=10) == []
    assert not any(t.is_alive() for t in busy)


def test_workers_of_an_open_pool_are_reported_after_the_timeout():
    before = {t.name for t in threading.enumerate()}
    pool = ThreadPool(1)
    try:
        waiting = {t.name for t in threading.enumerate() if isinstance(t, DummyProcess)} - before
        assert len(waiting) == 1
        assert waiting <= set(wait_for_pool_workers(timeout=0.05))
    finally:
        pool.terminate()
        pool.join()
