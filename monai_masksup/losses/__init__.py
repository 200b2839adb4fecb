"""Losses: the MaskSup objective, the consistency between two models' predictions, multi-label deep supervision,
the MaskContrast objective and its prototype queue, and the logging contract."""

from .components import LossComponents
from .consistency import ConsistencyLoss
from .mask_mix import mix_with_mask
from .masksup_loss import MaskSupLoss
from .multi_label_deep_supervision import MultiLabelDeepSupervisionLoss, multi_label_targets
from .multiple_instance_loss import MultipleInstanceLoss
from .balanced_bce import BalancedBCEWithLogitsLoss
from .maskcontrast_loss import MaskContrastLoss, contrastive_logits, enet_class_weights, mask_prototypes
from .prototype_queue import PrototypeQueue
