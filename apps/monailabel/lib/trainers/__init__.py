"""Train tasks of the MONAI Label app."""

from .masksup_bundle_train import MaskSupBundleTrainTask

__all__ = ["MaskSupBundleTrainTask"]
