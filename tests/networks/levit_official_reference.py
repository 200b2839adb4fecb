"""Rebuild official MaskSup LeViT-UNet state dicts from ``../shared/reference/levit_unet_official.npz``.

Shared by the checkpoint-loading and the TorchScript-export tests; the arrays and the fill rule
are described in ``../shared/reference/README.md`` ("loading official MaskSup LeViT-UNet
checkpoints").
"""

from __future__ import annotations

import numpy as np
import torch

REF = "levit_unet_official.npz"


def _shape(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in text.split(",")) if text else ()


def _fill(key: str, shape: tuple[int, ...], j_alias: int) -> torch.Tensor:
    """README fill rule: s = sin(0.37 i + 1.3 j' + 0.1) in float64, stored as float32."""
    s = np.sin(0.37 * np.arange(int(np.prod(shape)), dtype=np.float64) + 1.3 * j_alias + 0.1)
    if key.endswith("running_var"):
        value = 1.0 + 0.5 * s**2
    elif "attention_biases" in key:
        value = 0.1 * s
    elif len(shape) >= 2:
        value = np.sqrt(2.0 / np.prod(shape[1:])) * s
    elif key.endswith("weight"):
        value = 1.0 + 0.1 * s
    else:
        value = 0.05 * s
    return torch.from_numpy(value.astype(np.float32).reshape(shape))


def official_state_dict(ref: dict, variant: str) -> dict[str, torch.Tensor]:
    """The official ``state_dict()`` of ``variant`` as described by the reference arrays, in order."""
    keys, shapes, dtypes = ref[f"{variant}_keys"], ref[f"{variant}_shapes"], ref[f"{variant}_dtypes"]
    alias_of = ref[f"{variant}_alias_of"]
    state: dict[str, torch.Tensor] = {}
    for j, (key, shape, dtype) in enumerate(zip(keys.tolist(), shapes.tolist(), dtypes.tolist())):
        if dtype == "torch.float32":
            state[key] = _fill(key, _shape(shape), int(alias_of[j]))
        else:
            state[key] = torch.from_numpy(ref[f"{variant}_int_{j}"])
        assert tuple(state[key].shape) == _shape(shape), key
    return state
