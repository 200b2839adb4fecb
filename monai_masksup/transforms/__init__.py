"""Masking transforms: irregular hole masks (MaskSup) and box masks (CutMix / Cutout)."""

from .box_mask import BoxMaskGenerator, RandBoxMask, RandBoxMaskd
from .hole_mask import RandHoleMask, RandHoleMaskd
from .hole_mask_folder import HoleMaskFolder, LoadHoleMaskd
from .apply_mask import apply_mask
from .hole_mask_generator import COVERAGE_PRESETS, HoleMaskGenerator
