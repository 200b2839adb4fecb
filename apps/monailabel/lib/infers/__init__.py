"""Infer tasks of the MONAI Label app."""

from .masksup_bundle_infer import MaskSupBundleInferTask

__all__ = ["MaskSupBundleInferTask"]
