"""Tests of UnlabeledStream: endless passes over a loader, fresh per epoch, distinct sampler epochs."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from monai_masksup.engines import UnlabeledStream
from monai_masksup.engines.unlabeled_stream import passes_per_epoch


def test_cycles_past_the_end_and_restarts_at_each_epoch():
    stream = UnlabeledStream([0, 1, 2], "loader")
    stream.start_epoch(1)
    assert [stream.next() for _ in range(5)] == [0, 1, 2, 0, 1]
    stream.start_epoch(2)
    assert [stream.next() for _ in range(2)] == [0, 1]


def test_distributed_sampler_gets_a_distinct_epoch_per_pass_and_stream():
    data = list(range(8))
    seen: dict[str, list[int]] = {"a": [], "b": []}
    streams = {}
    for name, offset in (("a", 0), ("b", 1)):
        sampler = DistributedSampler(data, num_replicas=2, rank=0, shuffle=True, seed=0)
        original = sampler.set_epoch
        sampler.set_epoch = lambda e, original=original, name=name: (seen[name].append(e), original(e))
        streams[name] = UnlabeledStream(DataLoader(data, batch_size=2, sampler=sampler), name, 3, 2, offset)
    orders = {"a": [], "b": []}
    for epoch in (1, 2):
        for name, stream in streams.items():
            stream.start_epoch(epoch)
            orders[name] += [stream.next().tolist() for _ in range(4)]  # two passes of 2 batches
    # ((epoch - 1) * passes_per_epoch + pass) * stride + offset
    assert seen == {"a": [0, 2, 6, 8], "b": [1, 3, 7, 9]}
    # the two streams over the same data never draw the same order
    assert orders["a"] != orders["b"]


def test_an_empty_loader_is_an_error_naming_it():
    stream = UnlabeledStream([], "unlabeled_data_loader")
    with pytest.raises(ValueError, match="unlabeled_data_loader gave no batch"):
        stream.next()


def test_a_non_iterable_is_refused():
    with pytest.raises(TypeError, match="unlabeled_data_loader"):
        UnlabeledStream(torch.tensor(3.0).item(), "unlabeled_data_loader")


@pytest.mark.parametrize("length, draws, expected", [(4, 4, 2), (4, 5, 3), (4, 9, 4), (10, 1, 2), (3, 0, 1)])
def test_passes_per_epoch_bounds_the_passes_an_epoch_starts(length, draws, expected):
    # draws batches from a loader of `length` batches: ceil(draws / length) passes, one more when the last is exact
    assert passes_per_epoch(list(range(length)), draws) == expected


def test_passes_per_epoch_of_a_loader_without_length_is_large():
    assert passes_per_epoch(iter(range(3)), 5) == 1_000_000
