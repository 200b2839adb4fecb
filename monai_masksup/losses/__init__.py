"""Losses: the MaskSup objective (clean + context branch + task similarity)."""

from .masksup_loss import MaskSupLoss
