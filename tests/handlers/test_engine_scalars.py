"""Loss-component and learning-rate scalars of a training engine's output."""

from __future__ import annotations

import pytest
import torch

from monai_masksup.handlers.engine_scalars import from_engine_scalars


def test_scalars_of_decollated_output_include_components_and_lr():
    output = [{"loss": torch.tensor(1.5), "loss_seg": 0.5, "loss_context": 0.75, "loss_task_sim": 0.25}] * 2
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
    scalars = from_engine_scalars(optimizer=optimizer)(output)
    assert scalars == {"loss": 1.5, "loss_seg": 0.5, "loss_context": 0.75, "loss_task_sim": 0.25, "lr": 3e-4}


def test_scalars_name_the_missing_key():
    with pytest.raises(KeyError, match="loss_context"):
        from_engine_scalars()({"loss": 1.0, "loss_seg": 1.0})
