"""Engines: the shared multi-pass training step, the MaskSup, multi-label deep-supervision and MaskContrast
trainers built on it, and the extra-state contract between engines and the checkpoint handler."""

from .extra_state import ExtraStateOwner, GeneratorState, Stateful
from .masksup_trainer import BRANCH_MODES, MaskSupKeys, MaskSupTrainer
from .mlds_trainer import MLDS_MODES, MLDSKeys, MultiLabelDeepSupervisionTrainer, split_hierarchical_output
from .multi_pass_trainer import MultiPassTrainer, TrainerEvents, TrainingBatch, TrainingStep, first_output, to_float32
from .pseudo_labels import restricted_pseudo_labels
from .teacher_perturbation import FlipAffinePerturbation, PerturbationParams
from .maskcontrast_trainer import KEY_NETWORK_STATE, QUEUE_STATE, MaskContrastTrainer
from .semi_supervised_trainer import PERTURBATIONS, SemiSupervisedTrainer, sigmoid_rampup
from .unlabeled_stream import UnlabeledStream
