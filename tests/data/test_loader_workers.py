from __future__ import annotations

import os

import pytest

from monai_masksup.data import default_num_workers


def test_workers_never_exceed_the_cpus_the_process_may_use(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert default_num_workers() == 2
    assert default_num_workers(limit=1) == 1


def test_workers_are_capped_on_a_large_machine(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert default_num_workers() == 4


def test_without_affinity_mask_the_cpu_count_is_used(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert default_num_workers() == 1


def test_limit_below_one_is_refused():
    with pytest.raises(ValueError, match="limit"):
        default_num_workers(limit=0)
