"""NetworkCheckpointLoader: a checkpoint that does not fit the configured network is reported in one message."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine
from monai.networks.nets import BasicUNet

from monai_masksup.handlers.network_checkpoint_loader import (
    CheckpointMismatchError,
    NetworkCheckpointLoader,
    state_dict_mismatch,
)

#: the bundles' configs/demo.json network, and a network of the same class with other widths
DEMO_FEATURES = (8, 8, 16, 32, 64, 8)
OTHER_FEATURES = (16, 16, 32, 64, 128, 16)


def _unet(features) -> BasicUNet:
    return BasicUNet(spatial_dims=2, in_channels=3, out_channels=1, features=features)


def _load_with(loader: NetworkCheckpointLoader) -> None:
    engine = Engine(lambda e, b: None)
    loader.attach(engine)
    engine.run([0], max_epochs=1)


def test_a_demo_checkpoint_in_the_full_network_is_one_message_naming_the_overlay(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(_unet(DEMO_FEATURES).state_dict(), path)
    network = _unet(OTHER_FEATURES)
    with pytest.raises(CheckpointMismatchError) as raised:
        _load_with(NetworkCheckpointLoader(load_path=str(path), load_dict={"model": network}))
    message = str(raised.value)
    assert "\n" not in message and len(message) < 1000
    assert str(path) in message and "BasicUNet" in message
    assert "network_def" in message and "configs/demo.json" in message and "--config_file" in message
    assert "differ in shape (e.g. 'conv_0.conv_0.conv.weight': (8, 3, 3, 3) in the file, (16, 3, 3, 3)" in message
    # PyTorch's key-by-key report is not chained to it
    error = raised.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_missing_and_unexpected_tensors_are_counted(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"weight": torch.zeros(2, 3), "extra.weight": torch.zeros(1)}, path)
    network = torch.nn.Linear(3, 2)
    missing = r"1 of the network's 2 tensors are not in the file \(e.g. 'bias'\)"
    with pytest.raises(CheckpointMismatchError, match=missing):
        _load_with(NetworkCheckpointLoader(load_path=str(path), load_dict={"model": network}))
    with pytest.raises(CheckpointMismatchError, match=r"1 tensors of the file have no place.*'extra.weight'"):
        _load_with(NetworkCheckpointLoader(load_path=str(path), load_dict={"model": network}))


def test_a_checkpoint_replaced_after_attaching_is_reported_when_loading(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    engine = Engine(lambda e, b: None)
    NetworkCheckpointLoader(load_path=str(path), load_dict={"model": torch.nn.Linear(3, 2)}).attach(engine)
    torch.save(torch.nn.Linear(4, 2).state_dict(), path)
    with pytest.raises(CheckpointMismatchError, match=r"'weight': \(2, 4\) in the file, \(2, 3\) in the network"):
        engine.run([0], max_epochs=1)


def test_a_non_strict_loader_is_not_stopped(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"weight": torch.ones(2, 3)}, path)
    network = torch.nn.Linear(3, 2)
    _load_with(NetworkCheckpointLoader(load_path=str(path), load_dict={"model": network}, strict=False))
    assert torch.equal(network.weight, torch.ones(2, 3))


def test_a_fitting_checkpoint_loads_as_with_monai(tmp_path):
    path = tmp_path / "model.pt"
    trained = torch.nn.Linear(3, 2)
    torch.save(trained.state_dict(), path)
    network = torch.nn.Linear(3, 2)
    _load_with(NetworkCheckpointLoader(load_path=str(path), load_dict={"model": network}))
    assert torch.equal(network.weight, trained.weight) and torch.equal(network.bias, trained.bias)


def test_other_load_errors_are_not_disguised(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"model": torch.nn.Linear(3, 2).state_dict(), "trainer": {"bad": 1}}, path)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    loader = NetworkCheckpointLoader(load_path=str(path), load_dict={"model": torch.nn.Linear(3, 2), "optimizer": optimizer})
    with pytest.raises(Exception) as raised:
        _load_with(loader)
    assert not isinstance(raised.value, CheckpointMismatchError)


def test_state_dict_mismatch_lists_missing_unexpected_and_reshaped():
    network = {"a": torch.zeros(2), "b": torch.zeros(3), "c": torch.zeros(1)}
    saved = {"a": torch.zeros(2), "b": torch.zeros(4), "d": torch.zeros(1)}
    assert state_dict_mismatch(network, saved) == (["c"], ["d"], [("b", (4,), (3,))])
