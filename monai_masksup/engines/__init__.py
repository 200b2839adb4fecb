"""Engines: the shared multi-pass training step and the MaskSup trainer built on it, and the extra-state contract
between engines and the checkpoint handler."""

from .extra_state import ExtraStateOwner, GeneratorState, Stateful
from .masksup_trainer import BRANCH_MODES, MaskSupKeys, MaskSupTrainer
from .multi_pass_trainer import MultiPassTrainer, TrainerEvents, TrainingBatch, TrainingStep, first_output, to_float32
from .semi_supervised_trainer import PERTURBATIONS, SemiSupervisedTrainer, sigmoid_rampup
from .unlabeled_stream import UnlabeledStream
