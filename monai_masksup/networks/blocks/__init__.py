"""Network building blocks of monai_masksup."""

from __future__ import annotations

from .levit_attention import (
    ConvBN,
    LeViTAttention,
    LeViTAttentionSubsample,
    LeViTMLP,
    LeViTResidual,
    LinearBN,
    relative_offset_index,
)
