"""Loss-component and learning-rate scalars of a training engine's output."""

from __future__ import annotations

import pytest
import torch

from monai_masksup.handlers.engine_scalars import MASKSUP_LOSS_KEYS, from_engine_scalars


def test_scalars_of_decollated_output_include_components_and_lr():
    output = [{"loss": torch.tensor(1.5), "loss_seg": 0.5, "loss_context": 0.75, "loss_task_sim": 0.25}] * 2
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
    scalars = from_engine_scalars(optimizer=optimizer)(output)
    assert scalars == {"loss": 1.5, "loss_seg": 0.5, "loss_context": 0.75, "loss_task_sim": 0.25, "lr": 3e-4}


def test_scalars_name_the_missing_key():
    with pytest.raises(KeyError, match="loss_context"):
        from_engine_scalars()({"loss": 1.0, "loss_seg": 1.0})


def test_scalars_include_every_loss_term_of_the_output():
    # a semi-supervised output: terms that the MaskSup key list does not name are logged too; a non-scalar
    # ``loss_*`` entry and other keys are not
    output = {
        "loss": torch.tensor(2.0),
        "loss_supervised": torch.tensor(1.25),
        "loss_consistency": 0.5,
        "loss_confidence_rate": torch.tensor([0.75]),
        "loss_map": torch.ones(2, 2),
        "pred": torch.zeros(1, 4, 4),
    }
    scalars = from_engine_scalars(keys=["loss"])(output)
    assert scalars == {"loss": 2.0, "loss_supervised": 1.25, "loss_consistency": 0.5, "loss_confidence_rate": 0.75}


def test_default_keys_are_the_masksup_terms_as_strings():
    assert [str(key) for key in MASKSUP_LOSS_KEYS] == ["loss", "loss_seg", "loss_context", "loss_task_sim"]
