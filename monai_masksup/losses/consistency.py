"""Consistency loss between two models' predictions (mean teacher, MaskSup's task similarity)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

from .logit_checks import as_plain_tensor, check_paired_logits

__all__ = ["ConsistencyLoss"]

_VARIANTS = ("var", "bce", "kld", "logits_var", "logits_smoothl1")
# the epsilon of the reference's robust_binary_crossentropy
_BCE_EPS = 1e-6


class ConsistencyLoss(_Loss):
    """
    Per-pixel consistency between the logits of a student (``input``) and of a target (``target``: a mean
    teacher, or MaskSup's other branch), as the CutMix/Cutout mean teacher of French et al., "Semi-supervised
    semantic segmentation needs strong, varied perturbations" (BMVC 2020), computes it:

        ``loss = mean_{B, spatial}( d(input, target) * mask * confidence )``

    where ``d`` is summed over the channels (``variant``):

    - ``"var"`` (default): ``Σ_c (p_s − p_t)²``, the squared difference of the two probability maps;
    - ``"bce"``: ``Σ_c −(p_t log(p_s + ε) + (1 − p_t) log(1 − p_s + ε))``, the reference's robust binary
      cross-entropy (ε = 1e-6) of the student's probabilities against the target's;
    - ``"kld"``: ``Σ_c p_t (log p_t − log p_s)``, the Kullback-Leibler divergence ``KL(p_t ‖ p_s)``;
    - ``"logits_var"``: ``Σ_c (z_s − z_t)² / √C``;
    - ``"logits_smoothl1"``: ``Σ_c smoothL1(z_s − z_t) / √C`` (β = 1).

    ``p = softmax(z)`` over the channel dimension. The reference sums over the channels (rather than
    averaging) to keep the gradient with respect to the logits about the same for any number of classes.

    **One output channel** (binary segmentation) is *defined* as the two-class softmax on the logits ``[0, z]``,
    whose probabilities are ``[1 − σ(z), σ(z)]``: every variant is computed on those two channels (so
    ``C = 2``). ``"var"`` on one channel is therefore ``2 (σ(z_s) − σ(z_t))²``, the two-class sum of squares,
    and the confidence of a pixel is ``max(σ(z_t), 1 − σ(z_t))``.

    **Loss mask**: an optional ``(B, 1, *spatial)`` weight per pixel (CutMix: the mixed validity maps; Cutout:
    the box mask ``M``). The result is a plain mean over all ``B * spatial`` pixels, **not** divided by the
    mask's sum, as the reference.

    **Confidence threshold** (``confidence_threshold``): pixels whose target maximum probability is at least
    the threshold are confident. As the reference, by default the loss is scaled by the *proportion* of
    confident pixels, taken over **all** ``B * spatial`` pixels (masked-out ones included);
    ``confidence_per_pixel=True`` gates each pixel instead. Without a threshold nothing is gated.

    **Gradient through the target**: a mean teacher's target has no gradient, so ``detach_target=True`` (the
    default) detaches it; MaskSup's task similarity needs the gradient through both branches
    (``detach_target=False``).

    After every ``forward`` :py:meth:`loss_components` gives the value (``"consistency"``) and, with a
    threshold, the proportion of confident pixels (``"confidence_rate"``), detached, for logging. The losses are
    computed in float32 (float64 stays float64) even under autocast, as the reference. Works for 2D and 3D.

    Args:
        variant: ``"var"``, ``"bce"``, ``"kld"``, ``"logits_var"`` or ``"logits_smoothl1"`` (see above).
            Defaults to ``"var"``.
        confidence_threshold: threshold in [0, 1] on the target's maximum probability, e.g. 0.97 as the
            reference's mean teacher. ``None`` (default) applies no confidence weighting; 0 gives the same
            value (every pixel is confident), as the reference's ``conf_thresh = 0``.
        confidence_per_pixel: with a threshold, gate each pixel by its own confidence instead of scaling the
            loss by the proportion of confident pixels. Defaults to ``False`` (the reference's default).
        detach_target: stop the gradient through ``target``. Defaults to ``True``.
        reduction: ``"mean"`` (default) over ``B * spatial``, ``"sum"``, or ``"none"`` for the weighted per-pixel
            map ``(B, 1, *spatial)``.

    Raises:
        ValueError: when ``variant`` or ``reduction`` is unknown, or ``confidence_threshold`` is outside [0, 1].
    """

    def __init__(
        self,
        variant: str = "var",
        confidence_threshold: float | None = None,
        confidence_per_pixel: bool = False,
        detach_target: bool = True,
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        super().__init__(reduction=LossReduction(reduction).value)
        if variant not in _VARIANTS:
            raise ValueError(f"ConsistencyLoss: variant must be one of {_VARIANTS}, got {variant!r}.")
        if confidence_threshold is not None:
            confidence_threshold = float(confidence_threshold)
            if not 0.0 <= confidence_threshold <= 1.0:
                raise ValueError(
                    f"ConsistencyLoss: confidence_threshold must be in [0, 1] (or None), got {confidence_threshold}."
                )
        self.variant = variant
        self.confidence_threshold = confidence_threshold
        self.confidence_per_pixel = bool(confidence_per_pixel)
        self.detach_target = bool(detach_target)
        self._last_components: dict[str, torch.Tensor] = {}

    def forward(self, input: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """
        Args:
            input: the student's logits (not probabilities), ``(B, C, *spatial)``; ``C == 1`` is binary.
            target: the target's logits, same shape (for CutMix, the teacher's logits on the two images mixed
                with the box mask, see :py:func:`monai_masksup.losses.mix_with_mask`).
            mask: optional per-pixel loss weight ``(B, 1, *spatial)``, e.g. 1 = counted, 0 = ignored.

        Returns:
            the loss: a scalar for ``reduction="mean"`` / ``"sum"``, the map ``(B, 1, *spatial)`` for ``"none"``.

        Raises:
            TypeError: when ``input``, ``target`` or ``mask`` is not a tensor, or the logits are not floating point.
            ValueError: when ``input`` and ``target`` differ in shape or have no spatial dimension, or ``mask`` is
                not ``(B, 1, *spatial)``.
        """
        student = as_plain_tensor(input, "ConsistencyLoss: input")
        teacher = as_plain_tensor(target, "ConsistencyLoss: target")
        for name, logits in (("input", student), ("target", teacher)):
            if not logits.is_floating_point():
                raise TypeError(f"ConsistencyLoss: {name} must hold floating-point logits, got dtype {logits.dtype}.")
        check_paired_logits(student, teacher, "ConsistencyLoss: input", "target")
        if self.detach_target:
            teacher = teacher.detach()
        dtype = torch.promote_types(student.dtype, torch.float32)
        student, teacher = student.to(dtype), teacher.to(dtype)
        if student.shape[1] == 1:
            student, teacher = _two_class_logits(student), _two_class_logits(teacher)

        prob_teacher = torch.softmax(teacher, dim=1)
        per_pixel = self._per_pixel(student, teacher, prob_teacher)

        weight = None if mask is None else _checked_mask(mask, per_pixel).to(dtype)
        components: dict[str, torch.Tensor] = {}
        if self.confidence_threshold is not None:
            confident = (prob_teacher.max(dim=1, keepdim=True).values >= self.confidence_threshold).to(dtype)
            rate = confident.mean()
            components["confidence_rate"] = rate.detach()
            gate = confident if self.confidence_per_pixel else rate
            weight = gate if weight is None else weight * gate
        loss_map = per_pixel if weight is None else per_pixel * weight

        if self.reduction == LossReduction.MEAN.value:
            loss = loss_map.mean()
        elif self.reduction == LossReduction.SUM.value:
            loss = loss_map.sum()
        else:
            loss = loss_map
        # the logged value is the mean whatever the reduction, so a "none" map still logs as one number
        self._last_components = {"consistency": loss_map.detach().mean(), **components}
        return loss

    def loss_components(self) -> dict[str, torch.Tensor]:
        """
        Returns:
            the terms of the last ``forward``, detached scalars: ``"consistency"`` (the mean over ``B * spatial``
            of the weighted per-pixel loss) and, with a threshold, ``"confidence_rate"`` (the proportion of
            confident pixels over all pixels). Empty before the first call.
        """
        return dict(self._last_components)

    def _per_pixel(self, student: torch.Tensor, teacher: torch.Tensor, prob_teacher: torch.Tensor) -> torch.Tensor:
        """The variant's loss summed over the channels, ``(B, 1, *spatial)``."""
        if self.variant == "var":
            per_class = (torch.softmax(student, dim=1) - prob_teacher) ** 2
        elif self.variant == "bce":
            prob_student = torch.softmax(student, dim=1)
            per_class = -(
                prob_teacher * torch.log(prob_student + _BCE_EPS)
                + (1.0 - prob_teacher) * torch.log(1.0 - prob_student + _BCE_EPS)
            )
        elif self.variant == "kld":
            per_class = F.kl_div(F.log_softmax(student, dim=1), prob_teacher, reduction="none")
        elif self.variant == "logits_var":
            per_class = (student - teacher) ** 2 / math.sqrt(student.shape[1])
        else:
            per_class = F.smooth_l1_loss(student, teacher, reduction="none") / math.sqrt(student.shape[1])
        return per_class.sum(dim=1, keepdim=True)


def _two_class_logits(logits: torch.Tensor) -> torch.Tensor:
    """``(B, 1, *spatial)`` logits ``z`` -> ``(B, 2, *spatial)`` logits ``[0, z]``, softmax ``[1 - σ(z), σ(z)]``."""
    return torch.cat([torch.zeros_like(logits), logits], dim=1)


def _checked_mask(mask: torch.Tensor, per_pixel: torch.Tensor) -> torch.Tensor:
    """Return ``mask`` as a plain tensor after checking that it is ``(B, 1, *spatial)`` like ``per_pixel``."""
    mask = as_plain_tensor(mask, "ConsistencyLoss: mask")
    if mask.shape != per_pixel.shape:
        raise ValueError(
            f"ConsistencyLoss: mask must be (B, 1, *spatial) = {tuple(per_pixel.shape)} for the logits, "
            f"got shape {tuple(mask.shape)}."
        )
    return mask
