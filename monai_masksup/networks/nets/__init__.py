"""Networks of monai_masksup. The U-Net / U-Net++ baselines are MONAI's ``BasicUNet`` and
``BasicUNetPlusPlus`` and are not re-implemented here."""

from __future__ import annotations

from .levit_unet import LEVIT_SPECS, LeViTUNet, LeViTUNetDecoderBlock
from .maskcontrast_net import TRUNK_PREFIX, MaskContrastNet
from .pretrained_trunk import load_pretrained_trunk, trunk_state
