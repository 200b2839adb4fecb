"""Networks, network blocks and pretrained-weight loaders of monai_masksup."""

from __future__ import annotations

from .ema_teacher import EMATeacher
from .levit_weights import (
    LEVIT_IMAGENET_URLS,
    LeViTWeightsReport,
    download_levit_weights,
    load_levit_imagenet_weights,
    load_masksup_checkpoint,
    masksup_key_to_levit_unet,
)
from .nets import (
    LEVIT_SPECS,
    HierarchicalUNet,
    HierarchicalUpBlock,
    LevelHead,
    LeViTUNet,
    LeViTUNetDecoderBlock,
    TRUNK_PREFIX,
    MaskContrastNet,
    load_pretrained_trunk,
    trunk_state,
)
