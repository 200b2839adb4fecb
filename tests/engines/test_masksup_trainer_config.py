"""MaskSupTrainer instantiated from a bundle-style config through ``monai.bundle.ConfigParser``."""

from __future__ import annotations

import math

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.handlers import StatsHandler

from monai_masksup.engines import MaskSupTrainer
from monai_masksup.losses import MaskSupLoss
from monai_masksup.transforms import HoleMaskGenerator


def _datalist(n: int = 4, size: int = 32) -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        {
            "image": rng.random((1, size, size), dtype=np.float32),
            "label": (rng.random((1, size, size)) > 0.5).astype(np.float32),
        }
        for _ in range(n)
    ]


def _train_config(preprocessing: list[dict]) -> dict:
    """A model-zoo style train config: network, data, loss, optimizer, handlers, trainer."""
    return {
        "imports": ["$import torch", "$import monai", "$import monai_masksup"],
        "device": "$torch.device('cpu')",
        "network_def": {
            "_target_": "BasicUNet",
            "spatial_dims": 2,
            "in_channels": 1,
            "out_channels": 1,
            "features": [8, 8, 16, 16, 32, 8],
        },
        "network": "$@network_def.to(@device)",
        "train": {
            "preprocessing": {"_target_": "Compose", "transforms": preprocessing},
            "dataset": {"_target_": "Dataset", "data": "@train_datalist", "transform": "@train#preprocessing"},
            "dataloader": {"_target_": "DataLoader", "dataset": "@train#dataset", "batch_size": 2, "shuffle": False},
            "mask_generator": {"_target_": "monai_masksup.transforms.HoleMaskGenerator", "coverage": "high"},
            "loss": {"_target_": "monai_masksup.losses.MaskSupLoss", "weights": [1.0, 1.0, 1.0]},
            "optimizer": {"_target_": "torch.optim.Adam", "params": "$@network.parameters()", "lr": 0.001},
            "handlers": [
                {
                    "_target_": "StatsHandler",
                    "tag_name": "train_loss",
                    "output_transform": "$monai.handlers.from_engine(['loss'], first=True)",
                },
                {
                    "_target_": "StatsHandler",
                    "tag_name": "loss_context",
                    "output_transform": "$monai.handlers.from_engine(['loss_context'], first=True)",
                },
            ],
            "trainer": {
                "_target_": "monai_masksup.engines.MaskSupTrainer",
                "device": "@device",
                "max_epochs": 1,
                "train_data_loader": "@train#dataloader",
                "network": "@network",
                "optimizer": "@train#optimizer",
                "loss_function": "@train#loss",
                "mask_generator": "@train#mask_generator",
                "branch_mode": "batched",
                "fill_value": 0.0,
                "mask_seed": 0,
                "train_handlers": "@train#handlers",
            },
        },
        "run": ["$@train#trainer.run()"],
    }


def _parse(config: dict) -> ConfigParser:
    parser = ConfigParser(config)
    parser["train_datalist"] = _datalist()
    return parser


def test_bundle_config_builds_the_trainer_and_runs_one_epoch():
    parser = _parse(_train_config([{"_target_": "EnsureTyped", "keys": ["image", "label"]}]))
    trainer = parser.get_parsed_content("train#trainer")
    assert isinstance(trainer, MaskSupTrainer)
    assert isinstance(trainer.loss_function, MaskSupLoss)
    assert isinstance(trainer.mask_generator, HoleMaskGenerator)
    assert trainer.branch_mode == "batched" and trainer.mask_seed == 0
    assert sum(isinstance(h, StatsHandler) for h in parser.get_parsed_content("train#handlers")) == 2
    parser.get_parsed_content("run")
    assert trainer.state.epoch == 1 and trainer.state.iteration == 2
    first = trainer.state.output[0]  # decollated, as with SupervisedTrainer
    assert isinstance(first["image"], MetaTensor)
    for key in ("loss_seg", "loss_context", "loss_task_sim"):
        assert math.isfinite(first[key])


def test_bundle_config_with_rand_hole_maskd_uses_the_transform_masks():
    preprocessing = [
        {"_target_": "EnsureTyped", "keys": ["image", "label"]},
        {"_target_": "monai_masksup.transforms.RandHoleMaskd", "keys": "image", "coverage": "high", "fill_value": 0.5},
    ]
    parser = _parse(_train_config(preprocessing))
    parser["train"]["trainer"]["decollate"] = False
    trainer = parser.get_parsed_content("train#trainer")
    parser.get_parsed_content("run")
    out = trainer.state.output
    hole = out["hole_mask"].bool().expand_as(out["image"])
    # the transform's fill value 0.5 is in the holes, not the trainer's fill_value 0
    assert bool(hole.any())
    assert torch.all(out["image_masked"][hole] == 0.5)
    torch.testing.assert_close(out["image_masked"][~hole], out["image"].as_tensor()[~hole])
