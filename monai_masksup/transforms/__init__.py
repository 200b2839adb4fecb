"""Masking transforms: irregular hole masks (MaskSup) and box masks (CutMix / Cutout), drawn by any
:py:class:`MaskGenerator` and applied by :py:func:`apply_mask`; MaskContrast's mask proposals and two views."""

from .apply_mask import apply_mask
from .box_mask import BoxMaskGenerator, RandBoxMask, RandBoxMaskd
from .hole_mask import RandHoleMask, RandHoleMaskd
from .hole_mask_folder import HoleMaskFolder, LoadHoleMaskd
from .hole_mask_generator import COVERAGE_PRESETS, HoleMaskGenerator
from .mask_generator import MaskGenerator, check_mask_generator
from .mask_proposal import PROPOSAL_SOURCES, MaskProposal, MaskProposald, connected_components, otsu_threshold
from .maskcontrast_views import KEY_VIEW_PREFIX, MaskContrastViewsd, salient_fraction
