"""Multi-label deep supervision (MLDS): every decoder level learns which classes occur in its receptive window."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

from .logit_checks import as_plain_tensor

__all__ = ["MultiLabelDeepSupervisionLoss", "multi_label_targets"]

LEVEL_REDUCTIONS = ("mean", "sum")


def multi_label_targets(
    target: torch.Tensor,
    num_classes: int,
    level_sizes: Sequence[Sequence[int]],
    ignore_index: int | None = None,
    validate: bool = True,
) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """
    Build the multi-hot target of every deep-supervision level from a full-scale class-index map.

    The label is one-hot encoded with the background as class 0 (ignored pixels get no class), then max-pooled
    adaptively (``F.adaptive_max_pool{2,3}d``, overlapping windows for sizes that do not divide) to each level's
    size: a cell is positive for every class present in its window.

    Args:
        target: class indices ``(B, *spatial)`` or ``(B, 1, *spatial)``, integer valued (any dtype).
        num_classes: number of classes ``K``, background included.
        level_sizes: spatial size of every level, each no larger than ``spatial`` in any dimension.
        ignore_index: label value of unannotated pixels, or ``None``.
        validate: check the values (reads the minimum and maximum back from the device).

    Returns:
        one ``(multi_hot, counted)`` pair per level: ``multi_hot`` is ``(B, K, *size)`` float in {0, 1};
        ``counted`` is ``None`` without ``ignore_index``, else a ``(B, K, *size)`` float map in {0, 1} of the
        elements that carry information: a positive always (the class is seen in the window), a negative only
        when the window holds no ignored pixel (an ignored pixel could hide the class).

    Raises:
        ValueError: with ``validate``, when the target holds values other than class indices in ``[0, K)`` and
            ``ignore_index``.
    """
    target = target.long()
    spatial_dims = target.ndim - 1
    valid = None if ignore_index is None else target != ignore_index
    if validate:
        checked = target if valid is None else target[valid]
        if checked.numel() and (int(checked.min()) < 0 or int(checked.max()) >= num_classes):
            raise ValueError(
                f"target values must be class indices in [0, {num_classes - 1}]"
                + ("" if ignore_index is None else f" or ignore_index={ignore_index}")
                + f", got values in [{int(checked.min())}, {int(checked.max())}]."
            )
    safe = target if valid is None else target.masked_fill(~valid, 0)
    one_hot = F.one_hot(safe, num_classes).movedim(-1, 1).float()
    if valid is not None:
        one_hot = one_hot * valid.unsqueeze(1)
        ignored = (~valid).unsqueeze(1).float()
    pool = F.adaptive_max_pool2d if spatial_dims == 2 else F.adaptive_max_pool3d
    levels: list[tuple[torch.Tensor, torch.Tensor | None]] = []
    for size in level_sizes:
        size = tuple(int(s) for s in size)
        # a level at full size is its own target: pooling would only copy it
        multi_hot = one_hot if size == tuple(target.shape[1:]) else pool(one_hot, size)
        counted = None
        if valid is not None:
            any_ignored = ignored if size == tuple(target.shape[1:]) else pool(ignored, size)
            counted = torch.maximum(multi_hot, (1.0 - any_ignored).expand_as(multi_hot))
        levels.append((multi_hot, counted))
    return levels


class MultiLabelDeepSupervisionLoss(_Loss):
    """
    Multi-label deep supervision loss of "Every Annotation Counts: Multi-label Deep Supervision for Medical Image
    Segmentation" (Reiß, Seibold, Freytag, Rodner, Stiefelhagen, CVPR 2021).

    Every deep-supervision level ``s`` predicts, for each of its cells and each class, whether the class occurs in
    the cell's window of the full-scale label. The target of a level is the one-hot label (background included)
    max-pooled adaptively to the level's size (:func:`multi_label_targets`), and the level's loss is the binary
    cross-entropy with logits, mean over the classes and positions of each sample:

        ``L_s = reduce_b mean_{k, x} BCE(σ(z_s[b, k, x]), Y_s[b, k, x])``,  ``L = reduce_s w_s L_s``

    With ``level_reduction="sum", reduction="sum"`` this is the released code's ``compute_mlds`` (``Simael/mlds-unet``,
    sum over levels and over the batch); the paper's Eq. 9 averages over the levels. The defaults (both ``"mean"``)
    average, as MONAI losses do, so the value does not grow with the batch size or the number of levels.

    **Level order**: any. Each level's target is pooled to that level's own size, so the order only decides which
    weight and which logged component belongs to which level. :class:`~monai_masksup.networks.HierarchicalUNet`
    returns its levels coarse to fine (bottleneck first, as the reference); MONAI's ``SegResNetDS`` returns them
    fine to coarse (full size first); both work unchanged, in 2D and 3D.

    Why not MONAI's ``DeepSupervisionLoss``: it resizes the target with nearest-neighbour interpolation (a cell
    takes one pixel's class), weights by list position, and has neither one-hot encoding nor an ignore value. It is
    the right choice for a multi-class loss at every level; this loss is the method's multi-label one. MONAI
    ``DynUNet``'s deep-supervision output (a tensor stacking full-size upsampled outputs in dim 1) is refused: at full
    size the max-pooling does nothing and the loss degenerates to per-pixel BCE.

    **Ignored pixels** (``ignore_index``, e.g. unannotated B-scan columns stored as 0): they are excluded before the
    one-hot encoding. A positive (a class seen among a cell's annotated pixels) always counts; a negative counts only
    when the cell's window has no ignored pixel, as the class could hide there. Each sample's mean is over the
    elements that count; a sample whose elements all do not count contributes 0.

    After every ``forward`` the unweighted level losses are given by :py:meth:`loss_components` as
    ``{"level_0": L_0, "level_1": L_1, ...}`` in the order of the input (the
    :py:class:`~monai_masksup.losses.LossComponents` protocol).

    Args:
        weights: one non-negative weight per level, in the order of the input (``DeepSupervisionLoss``'s name);
            ``None`` weighs all levels 1.
        level_reduction: ``"mean"`` (paper, default) or ``"sum"`` (released code) over the levels.
        reduction: over the batch: ``"mean"`` (default), ``"sum"`` (released code) or ``"none"`` (a ``(B,)`` tensor
            of per-sample totals).
        ignore_index: label value of unannotated pixels, or ``None`` (default).
        validate_target: check on every call that the target holds integer class indices (and ``ignore_index``),
            with a clear error otherwise. Each check reads a result back from the device, which stalls a CUDA loop
            once per step; set ``False`` once the data pipeline is trusted (shapes are still checked).

    Raises:
        ValueError: when ``level_reduction`` or ``reduction`` is not one of its values, or a weight is negative or
            not finite.
    """

    def __init__(
        self,
        weights: Sequence[float] | None = None,
        level_reduction: str = "mean",
        reduction: LossReduction | str = LossReduction.MEAN,
        ignore_index: int | None = None,
        validate_target: bool = True,
    ) -> None:
        super().__init__(reduction=LossReduction(reduction).value)
        if level_reduction not in LEVEL_REDUCTIONS:
            raise ValueError(f"level_reduction must be one of {LEVEL_REDUCTIONS}, got {level_reduction!r}.")
        if weights is not None:
            weights = [float(w) for w in weights]
            if any(not math.isfinite(w) or w < 0 for w in weights):
                raise ValueError(f"weights must be finite and non-negative, got {weights}.")
        self.weights = weights
        self.level_reduction = level_reduction
        self.ignore_index = ignore_index
        self.validate_target = bool(validate_target)
        self.last_components: dict[str, torch.Tensor] = {}

    def forward(self, input: Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            input: the deep-supervision logits, a list/tuple of ``(B, K, *size_s)`` tensors (2D or 3D), each level no
                larger than the target; several levels that are all at the target's full size are refused.
            target: full-scale class indices ``(B, 1, *spatial)`` or ``(B, *spatial)`` in ``[0, K)`` (and
                ``ignore_index``), any numeric dtype holding integers.

        Returns:
            the loss: a scalar, or ``(B,)`` with ``reduction="none"``.

        Raises:
            TypeError: when ``input`` is a single tensor (e.g. ``DynUNet``'s stacked output) rather than a list.
            ValueError: when ``input`` is empty, the levels differ in batch size, class count or dimensionality,
                ``weights`` has another length, a level is larger than the target or several are full size, or
                the target's shape or values do not fit.
        """
        levels = self._check_levels(input)
        spatial_dims = levels[0].ndim - 2
        target = self._check_target(as_plain_tensor(target, "target"), levels[0], spatial_dims, self.validate_target)
        full = tuple(target.shape[1:])
        sizes = [tuple(z.shape[2:]) for z in levels]
        for i, size in enumerate(sizes):
            if any(s > f for s, f in zip(size, full)):
                raise ValueError(
                    f"input[{i}] has spatial size {size}, larger than the target's {full}; every level must be at "
                    "most the target size."
                )
        if len(levels) > 1 and all(size == full for size in sizes):
            raise ValueError(
                f"all {len(levels)} levels are at the target's full size {full}: max-pooling the target does nothing "
                "there (e.g. an unbound DynUNet deep-supervision output, whose levels are upsampled). Pass the "
                "levels at their own sizes (HierarchicalUNet, SegResNetDS)."
            )
        weights = self._level_weights(len(levels))
        targets = multi_label_targets(target, levels[0].shape[1], sizes, self.ignore_index, self.validate_target)
        per_level = [_per_sample_bce(z.float(), y, counted) for z, (y, counted) in zip(levels, targets)]
        reduced = [self._reduce_batch(v) for v in per_level]
        self.last_components = {f"level_{i}": v.detach() for i, v in enumerate(reduced)}
        total = sum(w * v for w, v in zip(weights, per_level))
        if self.level_reduction == "mean":
            total = total / len(levels)
        return self._reduce_batch(total)  # type: ignore[arg-type]

    def loss_components(self) -> dict[str, torch.Tensor]:
        """
        Returns:
            the unweighted level losses of the last ``forward`` (batch-reduced as ``reduction``), detached:
            ``{"level_0": ..., "level_1": ...}`` in input order. Empty before the first call.
        """
        return dict(self.last_components)

    def _reduce_batch(self, per_sample: torch.Tensor) -> torch.Tensor:
        if self.reduction == LossReduction.MEAN.value:
            return per_sample.mean()
        if self.reduction == LossReduction.SUM.value:
            return per_sample.sum()
        return per_sample

    def _level_weights(self, count: int) -> list[float]:
        if self.weights is None:
            return [1.0] * count
        if len(self.weights) != count:
            raise ValueError(f"weights has {len(self.weights)} entries but the input has {count} levels.")
        return list(self.weights)

    @staticmethod
    def _check_levels(input: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if isinstance(input, torch.Tensor):
            raise TypeError(
                "input must be a list/tuple of deep-supervision logits, one tensor per level at its own size, got a "
                f"single tensor of shape {tuple(input.shape)}. MONAI DynUNet's deep-supervision output stacks "
                "full-size upsampled outputs in dim 1; max-pooling the target to full size does nothing, so it is "
                "not supported. Use HierarchicalUNet or SegResNetDS (in train mode), or wrap a single level as [x]."
            )
        if not isinstance(input, (list, tuple)) or len(input) == 0:
            raise ValueError(f"input must be a non-empty list/tuple of logits, got {type(input).__name__}.")
        levels = [as_plain_tensor(z, f"input[{i}]") for i, z in enumerate(input)]
        first = levels[0]
        if first.ndim not in (4, 5):
            raise ValueError(
                f"input[0] must be (B, K, H, W) or (B, K, D, H, W) logits, got shape {tuple(first.shape)}."
            )
        for i, z in enumerate(levels[1:], start=1):
            if z.ndim != first.ndim or z.shape[:2] != first.shape[:2]:
                raise ValueError(
                    f"input[{i}] has shape {tuple(z.shape)}; every level must share input[0]'s batch size, class "
                    f"count and dimensionality {tuple(first.shape[:2])} + {first.ndim - 2} spatial dims."
                )
        return levels

    @staticmethod
    def _check_target(target: torch.Tensor, first: torch.Tensor, spatial_dims: int, validate: bool) -> torch.Tensor:
        if target.ndim == spatial_dims + 2 and target.shape[1] == 1:
            target = target[:, 0]
        if target.ndim != spatial_dims + 1 or target.shape[0] != first.shape[0]:
            raise ValueError(
                f"target must be class indices (B, 1, *spatial) or (B, *spatial) with {spatial_dims} spatial dims and "
                f"batch size {first.shape[0]}, got shape {tuple(target.shape)}."
            )
        if validate and target.is_floating_point() and bool((target != target.round()).any()):
            raise ValueError("target must hold integer class indices, got non-integer values.")
        return target


def _per_sample_bce(logits: torch.Tensor, target: torch.Tensor, counted: torch.Tensor | None) -> torch.Tensor:
    """BCE-with-logits averaged over the classes and positions of each sample (over the counted elements)."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1)
    if counted is None:
        return bce.mean(1)
    counted = counted.flatten(1)
    # clamp: a sample with nothing counted gives 0 (still attached to the graph) instead of 0/0
    return (bce * counted).sum(1) / counted.sum(1).clamp_min(1.0)
