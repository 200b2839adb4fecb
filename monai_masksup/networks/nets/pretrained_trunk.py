"""The hand-off from MaskContrast pre-training to fine-tuning: a segmentation network loads the pre-trained trunk."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from monai.networks.utils import copy_model_state
from torch import nn

from .maskcontrast_net import TRUNK_PREFIX

__all__ = ["load_pretrained_trunk", "trunk_state"]


def trunk_state(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """
    The trunk's weights of a :class:`~monai_masksup.networks.MaskContrastNet` state, without the ``trunk.``
    prefix (so with the segmentation network's names); the heads are left out.

    Args:
        state: a ``MaskContrastNet.state_dict()``, or a training checkpoint holding one under ``"model"``
            (:class:`~monai_masksup.handlers.TrainingCheckpoint`'s interval checkpoints). A ``module.`` prefix
            (a ``DistributedDataParallel`` save) is removed.

    Raises:
        ValueError: when ``state`` holds no trunk weight.
    """
    if "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key[len("module.") :] if key.startswith("module.") else key
        if key.startswith(TRUNK_PREFIX):
            out[key[len(TRUNK_PREFIX) :]] = value
    if not out:
        raise ValueError(
            f"no pre-trained trunk weights (keys starting with {TRUNK_PREFIX!r}) in the checkpoint; "
            "expected a MaskContrastNet state_dict or a training checkpoint of one."
        )
    return out


def load_pretrained_trunk(
    network: nn.Module, pretrained_ckpt: str | os.PathLike | None, map_location: Any = "cpu"
) -> nn.Module:
    """
    Load the trunk of a MaskContrast pre-training into a segmentation network (MaskSup fine-tuning), through
    MONAI's ``copy_model_state``; the embedding and saliency heads are not loaded, and the network's own output
    layer keeps its initialisation.

    Every trunk weight must land: a trunk weight that the network lacks, or whose shape differs (a different
    ``features``/variant), is an error rather than a silently partial hand-off.

    Args:
        network: the segmentation network, of the trunk's architecture (e.g. the ``BasicUNet`` of the
            pre-training's trunk with its own ``out_channels``).
        pretrained_ckpt: path of a ``MaskContrastNet`` ``state_dict`` (or a training checkpoint of one);
            ``None`` or ``""`` returns ``network`` unchanged (training from scratch).
        map_location: ``torch.load`` map location.

    Returns:
        ``network``, with the trunk's weights loaded in place.

    Raises:
        FileNotFoundError: when ``pretrained_ckpt`` is not a file.
        ValueError: when the checkpoint holds no trunk weights, or some do not fit ``network``.
    """
    if pretrained_ckpt is None or str(pretrained_ckpt) == "":
        return network
    path = Path(pretrained_ckpt)
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained_ckpt {str(path)!r} is not a file (the MaskContrast pre-training's output)."
        )
    trunk = trunk_state(torch.load(path, map_location=map_location, weights_only=True))
    _, changed, _ = copy_model_state(network, trunk, inplace=True)
    missed = sorted(set(trunk) - set(changed))
    if missed:
        raise ValueError(
            f"pretrained_ckpt {str(path)!r}: {len(missed)} of {len(trunk)} trunk weights do not fit "
            f"{type(network).__name__} (missing or of another shape), e.g. {missed[:3]}; the network must have the "
            "pre-trained trunk's architecture."
        )
    logging.getLogger(__name__).info("loaded %d pre-trained trunk weights from %s", len(changed), path)
    return network
