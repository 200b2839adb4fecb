"""MaskSup loss: segmentation of the clean view + context branch + task similarity."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

from .consistency import ConsistencyLoss
from .logit_checks import as_plain_tensor, check_paired_logits

__all__ = ["MaskSupLoss"]

_COMPONENT_NAMES = ("seg", "context", "task_sim")

#: one prediction, or the list of a deep-supervision network's outputs (full resolution first)
Prediction = torch.Tensor | Sequence[torch.Tensor]


class MaskSupLoss(_Loss):
    """
    MaskSup loss of "Masked Supervised Learning for Semantic Segmentation" (Zunair and Hamza, BMVC 2022):

        ``L = a1 * seg(M_p, gt) + a2 * seg(M_pm, gt) + a3 * task_sim(M_p, M_pm)``

    where ``M_p`` are the logits of the clean image, ``M_pm`` the logits of the hole-masked image
    (the context branch, same network) and ``task_sim`` is the mean squared error between the two
    probability maps. The gradient of ``task_sim`` reaches both branches (no stop-gradient), as in
    the official code.

    - **Binary** (one output channel): ``seg`` is BCE-with-logits (mean over all elements) and
      ``task_sim`` is the MSE of the two sigmoid maps. With the default arguments this is exactly
      the official binary (GlaS / polyp) loss.
    - **Multi-class** (``C > 1`` channels): ``seg`` is cross-entropy (mean over the non-ignored
      pixels, with the optional ``ignore_index``) and ``task_sim`` is the MSE of the two softmax
      maps, mean over ``B * C * spatial``. The official NYUDv2 code takes the MSE of the two argmax
      index maps instead, which has no gradient; see ``docs/deviations.md``.

    ``task_sim`` is :py:class:`~monai_masksup.losses.ConsistencyLoss` (``"var"``, target not detached) divided
    by the number of classes ``K`` (``C``, or 2 for one channel): the consistency sums the squared differences
    over the classes, MaskSup's MSE averages them (over ``B * C * spatial``). For one channel the consistency's
    two-class sum ``2 (σ(M_p) − σ(M_pm))²`` divided by 2 is the binary MSE term (up to float rounding).

    Any MONAI segmentation loss may replace the built-in ``seg`` term through ``seg_loss``; it is
    called as ``seg_loss(logits, target)`` once per branch, e.g.
    ``DiceCELoss(to_onehot_y=True, softmax=True)`` (multi-class) or ``DiceCELoss(sigmoid=True)``
    (binary). The task-similarity activation is still chosen by the channel count.

    **Deep supervision**: either prediction may be a list/tuple of logits, full resolution first (as
    MONAI's deep-supervision networks return them). ``seg_loss`` then receives the whole list, so that
    ``seg_loss=monai.losses.DeepSupervisionLoss(DiceCELoss(sigmoid=True))`` supervises every level; the
    built-in BCE / cross-entropy and ``task_sim`` use the first (full-resolution) element only.
    ``DeepSupervisionLoss`` resizes the target to each level, which torch cannot do for an integer tensor:
    give a multi-class target as a float index map (as MONAI's loaders do) or one-hot.

    After every ``forward`` the unweighted terms ``{"seg", "context", "task_sim"}`` are given, detached, by
    :py:meth:`loss_components` (the :py:class:`~monai_masksup.losses.LossComponents` protocol) for logging;
    ``last_components`` is the dict behind it. Works for 2D and 3D inputs.

    Args:
        seg_loss: optional segmentation loss replacing BCE-with-logits / cross-entropy for both
            branches. Called as ``seg_loss(logits, target)`` (``logits`` as given to ``forward``: a
            deep-supervision list stays a list) with ``target`` as given to
            ``forward`` (a multi-class index map without channel dimension gets one added, the
            MONAI convention). It must handle ignored pixels itself, so it cannot be combined
            with ``ignore_index``.
        weights: non-negative weights ``(a1, a2, a3)`` of the clean-branch, context-branch and
            task-similarity terms. Defaults to ``(1.0, 1.0, 1.0)`` as in the paper.
        ignore_index: label value whose pixels are excluded from the segmentation terms **and**
            from the task-similarity term (the MSE is then the mean over the valid pixels and all
            channels). ``None`` (default) ignores nothing. A batch whose pixels are all ignored
            gives 0 for every term.
        validate_target: check the target's values on every call (binary: only 0 and 1; multi-class:
            integer class indices in range, or a valid one-hot map) and raise a clear error
            otherwise. Each check reads a result back from the device, which stalls a CUDA training
            loop once per step; set ``False`` to skip them once the data pipeline is trusted (the
            target's shape is still checked). Defaults to ``True``.

    Raises:
        ValueError: when ``weights`` is not three finite non-negative numbers, or when
            ``seg_loss`` and ``ignore_index`` are both given.
        TypeError: when ``seg_loss`` is not callable.
    """

    def __init__(
        self,
        seg_loss: Callable[[Prediction, torch.Tensor], torch.Tensor] | None = None,
        weights: Sequence[float] = (1.0, 1.0, 1.0),
        ignore_index: int | None = None,
        validate_target: bool = True,
    ) -> None:
        super().__init__()
        if seg_loss is not None and not callable(seg_loss):
            raise TypeError(f"seg_loss must be callable (e.g. a MONAI loss), got {type(seg_loss).__name__}.")
        if seg_loss is not None and ignore_index is not None:
            raise ValueError(
                "seg_loss and ignore_index cannot be combined: ignore_index only applies to the built-in "
                "BCE / cross-entropy; handle ignored pixels inside the custom seg_loss instead."
            )
        weights = tuple(float(w) for w in weights)
        if len(weights) != 3:
            raise ValueError(f"weights must have three entries (seg, context, task_sim), got {len(weights)}.")
        if any(not math.isfinite(w) or w < 0 for w in weights):
            raise ValueError(f"weights must be finite and non-negative, got {weights}.")
        self.seg_loss = seg_loss
        self.weights = weights
        self.ignore_index = ignore_index
        self.validate_target = bool(validate_target)
        # summed, then divided by the count in components(): the count is B * spatial or the valid pixels
        self.task_similarity = ConsistencyLoss(variant="var", detach_target=False, reduction=LossReduction.SUM)
        self.last_components: dict[str, torch.Tensor] = {}

    def forward(
        self, pred_clean_logits: Prediction, pred_masked_logits: Prediction, target: torch.Tensor
    ) -> torch.Tensor:
        """
        Args:
            pred_clean_logits: logits of the clean image, ``(B, C, *spatial)``, or a list/tuple of
                deep-supervision logits whose first element is that.
            pred_masked_logits: logits of the masked image, the same form; the first elements have the same
                shape.
            target: binary (``C == 1``): float ``(B, 1, *spatial)`` in {0, 1}. Multi-class: class
                indices ``(B, 1, *spatial)`` or ``(B, *spatial)``, or one-hot ``(B, C, *spatial)``.

        Returns:
            the weighted sum of the three terms, a scalar tensor.

        Raises:
            ValueError: see :py:meth:`components`.
        """
        terms = self.components(pred_clean_logits, pred_masked_logits, target)
        self.last_components = {name: value.detach() for name, value in terms.items()}
        return sum(w * terms[name] for w, name in zip(self.weights, _COMPONENT_NAMES))  # type: ignore[return-value]

    def loss_components(self) -> dict[str, torch.Tensor]:
        """
        Returns:
            the unweighted terms of the last ``forward``, detached scalars: ``{"seg", "context", "task_sim"}``.
            Empty before the first call.
        """
        return dict(self.last_components)

    def components(
        self, pred_clean_logits: Prediction, pred_masked_logits: Prediction, target: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """
        Compute the three unweighted terms, attached to the graph.

        Args:
            pred_clean_logits: logits of the clean image, see :py:meth:`forward`.
            pred_masked_logits: logits of the masked image, see :py:meth:`forward`.
            target: see :py:meth:`forward`.

        Returns:
            ``{"seg": seg(M_p, gt), "context": seg(M_pm, gt), "task_sim": task_sim(M_p, M_pm)}``,
            scalar tensors.

        Raises:
            ValueError: when the two (full-resolution) predictions differ in shape or have fewer than three
                dimensions, when a list of predictions is empty, when the target's batch/spatial size does not
                match the full-resolution prediction, and (with
                ``validate_target=True``) when a binary target holds values other than 0 and 1
                (and ``ignore_index``), or when a multi-class target holds values that are not
                class indices.
        """
        # the reference computes its losses on float32 even under autocast
        clean_all = _float_prediction(pred_clean_logits, "pred_clean_logits")
        masked_all = _float_prediction(pred_masked_logits, "pred_masked_logits")
        clean = clean_all[0] if isinstance(clean_all, list) else clean_all
        masked = masked_all[0] if isinstance(masked_all, list) else masked_all
        target = as_plain_tensor(target, "target")
        check_paired_logits(clean, masked, "pred_clean_logits", "pred_masked_logits")
        if clean.shape[1] == 1:
            return self._binary_components(clean, masked, target, (clean_all, masked_all))
        return self._multiclass_components(clean, masked, target, (clean_all, masked_all))

    def _check_target_size(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if target.shape[0] != pred.shape[0] or target.shape[2:] != pred.shape[2:]:
            raise ValueError(
                f"target batch/spatial size {tuple(target.shape[:1]) + tuple(target.shape[2:])} does not match "
                f"the predictions' {tuple(pred.shape[:1]) + tuple(pred.shape[2:])} "
                f"(target shape {tuple(target.shape)}, prediction shape {tuple(pred.shape)})."
            )

    def _task_sim(self, clean: torch.Tensor, masked: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """MSE of the two probability maps over ``B * C * spatial`` (or the valid pixels and all channels)."""
        num_classes = max(clean.shape[1], 2)
        if valid is None:
            count = float(clean[:, :1].numel())
            return self.task_similarity(clean, masked) / (num_classes * count)
        valid = valid.to(clean.dtype)
        # clamp: with no valid pixel the term is 0 (still attached to the graph) instead of 0/0
        return self.task_similarity(clean, masked, valid) / (num_classes * valid.sum().clamp_min(1.0))

    def _binary_components(
        self, clean: torch.Tensor, masked: torch.Tensor, target: torch.Tensor, seg_inputs: tuple[Prediction, Prediction]
    ) -> dict[str, torch.Tensor]:
        if target.ndim == clean.ndim - 1:
            target = target.unsqueeze(1)
        if target.ndim != clean.ndim or target.shape[1] != 1:
            raise ValueError(
                f"binary target must be (B, 1, *spatial) for predictions of shape {tuple(clean.shape)}, "
                f"got shape {tuple(target.shape)}."
            )
        self._check_target_size(clean, target)
        valid = None if self.ignore_index is None else target != self.ignore_index
        if self.validate_target:
            _check_binary_target(target, valid, self.ignore_index)
        target = target.to(clean.dtype)

        if self.seg_loss is not None:
            seg, context = (self.seg_loss(pred, target) for pred in seg_inputs)
        elif valid is None:
            seg = F.binary_cross_entropy_with_logits(clean, target)
            context = F.binary_cross_entropy_with_logits(masked, target)
        else:
            safe_target = target.masked_fill(~valid, 0.0)
            seg = _masked_mean(F.binary_cross_entropy_with_logits(clean, safe_target, reduction="none"), valid)
            context = _masked_mean(F.binary_cross_entropy_with_logits(masked, safe_target, reduction="none"), valid)
        return {"seg": seg, "context": context, "task_sim": self._task_sim(clean, masked, valid)}

    def _multiclass_components(
        self, clean: torch.Tensor, masked: torch.Tensor, target: torch.Tensor, seg_inputs: tuple[Prediction, Prediction]
    ) -> dict[str, torch.Tensor]:
        num_classes = clean.shape[1]
        if target.ndim == clean.ndim - 1:
            target = target.unsqueeze(1)
        if target.ndim != clean.ndim or target.shape[1] not in (1, num_classes):
            raise ValueError(
                f"multi-class target must be class indices (B, 1, *spatial) / (B, *spatial) or one-hot "
                f"(B, {num_classes}, *spatial) for predictions of shape {tuple(clean.shape)}, "
                f"got shape {tuple(target.shape)}."
            )
        self._check_target_size(clean, target)
        seg_target = target
        if target.shape[1] == num_classes:
            if self.validate_target:
                _check_one_hot_target(target)
            indices = target.argmax(1)
        else:
            if self.validate_target:
                _check_index_target(target[:, 0], num_classes, self.ignore_index)
            indices = target[:, 0].long()

        if self.seg_loss is not None:
            seg, context = (self.seg_loss(pred, seg_target) for pred in seg_inputs)
        elif self.ignore_index is None:
            seg = F.cross_entropy(clean, indices)
            context = F.cross_entropy(masked, indices)
        else:
            valid = (indices != self.ignore_index).unsqueeze(1)
            # per-pixel CE + masked mean equals torch's ignore_index mean, but gives 0 (not NaN) when all are ignored
            ce = {"ignore_index": self.ignore_index, "reduction": "none"}
            seg = _masked_mean(F.cross_entropy(clean, indices, **ce).unsqueeze(1), valid)
            context = _masked_mean(F.cross_entropy(masked, indices, **ce).unsqueeze(1), valid)
        valid = None if self.ignore_index is None else (indices != self.ignore_index).unsqueeze(1)
        return {"seg": seg, "context": context, "task_sim": self._task_sim(clean, masked, valid)}


def _float_prediction(pred: Prediction, name: str) -> torch.Tensor | list[torch.Tensor]:
    """``pred`` (a tensor, or a non-empty list/tuple of deep-supervision tensors) as plain float32 tensors."""
    if isinstance(pred, (list, tuple)):
        if len(pred) == 0:
            raise ValueError(f"{name} is an empty list/tuple; expected logits, full resolution first.")
        return [as_plain_tensor(p, f"{name}[{i}]").float() for i, p in enumerate(pred)]
    return as_plain_tensor(pred, name).float()


def _check_binary_target(target: torch.Tensor, valid: torch.Tensor | None, ignore_index: int | None) -> None:
    """Raise when a binary target (``valid`` marks the non-ignored pixels) holds values other than 0 and 1."""
    checked = target if valid is None else target[valid]
    if bool(((checked != 0) & (checked != 1)).any()):
        raise ValueError(
            "binary target must hold only 0 and 1"
            + ("" if ignore_index is None else f" (or ignore_index={ignore_index})")
            + f", got values in [{float(checked.min())}, {float(checked.max())}]; "
            "scale or threshold the label (e.g. 0/255 masks) first."
        )


def _check_one_hot_target(target: torch.Tensor) -> None:
    """Raise when a ``(B, C, *spatial)`` target is not one-hot along the channel dimension."""
    if bool(((target != 0) & (target != 1)).any()) or bool((target.sum(1) != 1).any()):
        raise ValueError(
            f"a multi-class target with {target.shape[1]} channels must be one-hot (values 0/1, one 1 per pixel)."
        )


def _check_index_target(indices: torch.Tensor, num_classes: int, ignore_index: int | None) -> None:
    """Raise when an index map ``(B, *spatial)`` holds non-integers or values outside the classes and ignore_index."""
    if indices.is_floating_point() and bool((indices != indices.round()).any()):
        raise ValueError("multi-class target must hold integer class indices, got non-integer values.")
    indices = indices.long()
    valid_idx = (indices >= 0) & (indices < num_classes)
    if ignore_index is not None:
        valid_idx |= indices == ignore_index
    if not bool(valid_idx.all()):
        bad = indices[~valid_idx]
        raise ValueError(
            f"multi-class target values must be class indices in [0, {num_classes - 1}]"
            + ("" if ignore_index is None else f" or ignore_index={ignore_index}")
            + f", got {int(bad.min())}..{int(bad.max())}."
        )


def _masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the valid pixels (all channels); ``valid`` is ``(B, 1, *spatial)`` bool."""
    weight = valid.to(values.dtype).expand_as(values)
    # clamp: with no valid pixel the term is 0 (still attached to the graph) instead of 0/0
    return (values * weight).sum() / weight.sum().clamp_min(1.0)
