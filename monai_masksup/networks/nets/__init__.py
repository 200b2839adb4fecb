"""Networks of monai_masksup. The U-Net / U-Net++ baselines are MONAI's ``BasicUNet`` and
``BasicUNetPlusPlus`` and are not re-implemented here; ``HierarchicalUNet`` is the multi-label deep-supervision
network, whose exact structure the method needs."""

from __future__ import annotations

from .hierarchical_unet import HierarchicalUNet, HierarchicalUpBlock, LevelHead
from .levit_unet import LEVIT_SPECS, LeViTUNet, LeViTUNetDecoderBlock
from .maskcontrast_net import TRUNK_PREFIX, MaskContrastNet
from .pretrained_trunk import load_pretrained_trunk, trunk_state
