"""Key names shared by the plugin's transforms, engines, losses, handlers and bundles."""

from __future__ import annotations

from monai.utils.enums import StrEnum

__all__ = ["PluginKeys"]


class PluginKeys(StrEnum):
    """
    Keys that the plugin adds to MONAI's ``CommonKeys`` (``image``, ``label``, ``pred``, ``loss``) in data
    dictionaries and in ``engine.state.output``. Being a ``StrEnum``, each member equals its string, so a bundle
    may write ``"image_masked"`` or ``"$monai_masksup.keys.PluginKeys.IMAGE_MASKED"``.

    - ``IMAGE_MASKED``: the input with holes or boxes applied (MaskSup's context branch, a mean teacher's
      student input).
    - ``HOLE_MASK``: the mask that made it, ``(1, *spatial)`` per sample, 1 = masked.
    - ``PRED_MASKED``: the prediction on ``IMAGE_MASKED``.
    - ``LOSS_SEG``, ``LOSS_CONTEXT``, ``LOSS_TASK_SIM``: MaskSup's loss components as logged by the engines
      (``"loss_" + name`` of :py:meth:`monai_masksup.losses.LossComponents.loss_components`).
    - ``LOSS_CONSISTENCY``, ``LOSS_CONFIDENCE_RATE``: ``ConsistencyLoss``'s value and its share of confident
      target pixels, as logged by the engines; ``LOSS_SUPERVISED``, ``LOSS_CONSISTENCY_WEIGHT``: the
      semi-supervised engine's supervised term and its consistency weight times the ramp-up.
    - ``IMAGE_LABELS`` (batch): ``(B, K)`` image-level labels in {0, 1} of an unlabelled batch (weak labels of
      multi-label deep supervision); ``BOX_MASK`` (batch): ``(B, K, *spatial)`` box masks in {0, 1}.
    - ``PRED_LEVELS``: the level logits of a deep-supervision network (a detached list, in the network's order);
      ``PSEUDO_LABEL``: pseudo-labels ``(B, 1, *spatial)``; ``VALIDITY_MASK``: the pixels a teacher's inverse
      perturbation restored ``(B, 1, *spatial)``.
    """

    IMAGE_MASKED = "image_masked"
    HOLE_MASK = "hole_mask"
    PRED_MASKED = "pred_masked"
    LOSS_SEG = "loss_seg"
    LOSS_CONTEXT = "loss_context"
    LOSS_TASK_SIM = "loss_task_sim"
    LOSS_CONSISTENCY = "loss_consistency"
    LOSS_CONFIDENCE_RATE = "loss_confidence_rate"
    LOSS_SUPERVISED = "loss_supervised"
    LOSS_CONSISTENCY_WEIGHT = "loss_consistency_weight"
    IMAGE_LABELS = "image_labels"
    BOX_MASK = "box_mask"
    PRED_LEVELS = "pred_levels"
    PSEUDO_LABEL = "pseudo_label"
    VALIDITY_MASK = "validity_mask"
