"""Engines: the MaskSup trainer (a MONAI ``SupervisedTrainer`` with a clean and a hole-masked branch)."""

from .masksup_trainer import BRANCH_MODES, MaskSupKeys, MaskSupTrainer
