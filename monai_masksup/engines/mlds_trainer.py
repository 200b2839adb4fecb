"""Training engine of multi-label deep supervision: supervised, Self-Taught and Mean-Taught modes and the
supplement's baselines, on the shared multi-pass training step."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Events
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

from monai_masksup.engines.extra_state import GeneratorState
from monai_masksup.engines.multi_pass_trainer import MultiPassTrainer, TrainingBatch, TrainingStep, to_float32
from monai_masksup.engines.pseudo_labels import restricted_pseudo_labels
from monai_masksup.engines.teacher_perturbation import FlipAffinePerturbation
from monai_masksup.engines.unlabeled_stream import UnlabeledStream, passes_per_epoch
from monai_masksup.keys import PluginKeys
from monai_masksup.losses.consistency import ConsistencyLoss
from monai_masksup.losses.logit_checks import as_plain_tensor
from monai_masksup.losses.multi_label_deep_supervision import MultiLabelDeepSupervisionLoss
from monai_masksup.losses.multiple_instance_loss import MultipleInstanceLoss

__all__ = ["MLDS_MODES", "MLDSKeys", "MultiLabelDeepSupervisionTrainer", "split_hierarchical_output"]

#: (a) supervised, (b) Self-Taught, (c) Mean-Taught, (d) the supplement's baselines
MLDS_MODES = ("supervised", "self_taught", "mean_taught", "unet", "mil", "ds_mil", "mean_teacher")
_UNLABELLED_MODES = ("self_taught", "mean_taught", "mil", "ds_mil", "mean_teacher")
_TEACHER_MODES = ("mean_taught", "mean_teacher")
_MLDS_LABELLED_MODES = ("supervised", "self_taught", "mean_taught", "ds_mil")

#: label value the default loss ignores when none is given: the teacher's pseudo-label pixels without content
PSEUDO_IGNORE_INDEX = -1
#: name of the perturbation generator in :meth:`MultiLabelDeepSupervisionTrainer.extra_state`
PERTURBATION_RNG_STATE = "perturbation_rng"


#: the keys of :class:`MultiLabelDeepSupervisionTrainer` (``IMAGE_LABELS``, ``BOX_MASK``, ``PRED_LEVELS``,
#: ``PSEUDO_LABEL``, ``VALIDITY_MASK``) are members of the plugin's one key enum.
MLDSKeys = PluginKeys


def split_hierarchical_output(pred: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """
    Return ``(standard logits, level logits)`` of a network's training output.

    - :class:`~monai_masksup.networks.HierarchicalUNet`: ``(logits, [levels])`` as is;
    - MONAI ``SegResNetDS`` (a list, full size first): the first output and the whole list;
    - a plain tensor (e.g. ``BasicUNet``): the tensor and ``[tensor]``.

    Raises:
        ValueError: when ``pred`` is an empty list/tuple.
    """
    if isinstance(pred, tuple) and len(pred) == 2 and isinstance(pred[1], (list, tuple)):
        return pred[0], list(pred[1])
    if isinstance(pred, (list, tuple)):
        if not pred:
            raise ValueError("the network returned an empty list/tuple of predictions.")
        return pred[0], list(pred)
    return pred, [pred]


class MultiLabelDeepSupervisionTrainer(MultiPassTrainer):
    """
    Training of "Every Annotation Counts: Multi-label Deep Supervision for Medical Image Segmentation" (Reiß et al.,
    CVPR 2021) on :class:`MultiPassTrainer`'s step. The network is a
    :class:`~monai_masksup.networks.HierarchicalUNet` (training output ``(logits, levels)``) or MONAI's
    ``SegResNetDS``; ``train_data_loader`` gives the pixel-labelled batches (``image``, ``label``), and
    ``unlabelled_data_loader`` (cycled) the unlabelled or weakly labelled ones (``image`` and optionally
    ``image_labels`` / ``box_mask``). The student runs once on both batches concatenated (shared batch-norm
    statistics). ``y`` is the mask, ``ŷ`` a pseudo-label, ``CE`` the standard head's ``seg_loss``, ``MLDS`` the
    ``loss_function`` on the levels:

    - ``"supervised"`` (a): ``CE(y) + w_mlds · MLDS(y)`` on the labelled batch.
    - ``"self_taught"`` (b): ``CE(y) + w_mlds · MLDS([y; ŷ])``; ``ŷ`` is the argmax of the student's own standard
      head on the unlabelled batch (same forward pass, detached), restricted by the weak labels
      (:func:`~monai_masksup.engines.pseudo_labels.restricted_pseudo_labels`). The standard head learns from masks
      only; the level heads learn from the max-pooled pseudo-labels as well.
    - ``"mean_taught"`` (c): as (b) with ``ŷ`` from ``teacher`` (an
      :class:`~monai_masksup.networks.EMATeacher` attached to this engine) on the **perturbed** unlabelled batch
      (``perturbation``: flips, optionally a small affine), its logits mapped back by the inverse; pixels the
      inverse leaves without content are ignored, and ``+ w_cons · consistency(student, teacher)`` on the valid
      pixels (the mean-teacher term of the supplement's Fig. 2).
    - baselines (d): ``"unet"``: ``CE(y)``; ``"mil"``: ``CE(y) + w_mil · MIL(logits_u, image_labels)``;
      ``"ds_mil"``: ``CE(y) + w_mlds · MLDS(y) + w_mil · MIL(levels_u, image_labels)`` (MIL on every level);
      ``"mean_teacher"``: ``CE(y) + w_cons · consistency`` alone (Perone and Cohen-Adad).

    ``engine.state.output``: ``PRED`` = the standard logits of the labelled batch (MONAI metrics never see a
    tuple), ``"pred_levels"`` (detached level logits of the labelled batch), ``"pseudo_label"`` and
    ``"validity_mask"`` when made, and the loss terms ``"loss_ce"``, ``"loss_mlds"``, ``"loss_mil"``,
    ``"loss_consistency"`` (those of the mode) plus ``"loss_level_<i>"`` of the last MLDS call.

    Distributed: in the modes that leave heads out of the loss (``"unet"``, ``"mil"``, ``"mean_teacher"`` leave the
    level heads out), a ``DistributedDataParallel`` network needs ``find_unused_parameters=True``. Each rank cycles
    its own unlabelled loader.

    The unlabelled loader is an :class:`~monai_masksup.engines.unlabeled_stream.UnlabeledStream`, as in
    ``SemiSupervisedTrainer``: it cycles independently of the labelled loader and starts a fresh pass at every
    epoch, so a run resumed from a checkpoint at an epoch boundary draws the same unlabelled batches as the
    uninterrupted run.

    Example (Mean-Taught on B-scans, horizontal flips; ``EMATeacher`` from ``monai_masksup.networks``)::

        net = HierarchicalUNet(in_channels=1, out_channels=4)
        teacher = EMATeacher(net, alpha=0.99)
        trainer = MultiLabelDeepSupervisionTrainer(
            device, max_epochs, labelled_loader, net, torch.optim.Adam(net.parameters(), 1e-4),
            mode="mean_taught", unlabelled_data_loader=unlabelled_loader, teacher=teacher,
            perturbation=FlipAffinePerturbation(flip_axes=(1,)), perturbation_seed=0,
        )
        teacher.attach(trainer)  # EMA update after every optimizer step, saved in checkpoints
        trainer.run()

    Args:
        device, max_epochs, train_data_loader, network, optimizer: as in ``SupervisedTrainer``.
        loss_function: the multi-label deep-supervision loss ``(levels, target) -> scalar``; default
            ``MultiLabelDeepSupervisionLoss(ignore_index=ignore_index or -1)``. Pseudo-label pixels without teacher
            content get its ``ignore_index``.
        mode: one of :data:`MLDS_MODES`.
        unlabelled_data_loader: iterable of unlabelled / weakly labelled batches; required by every mode but
            ``"supervised"`` and ``"unet"``. Its batches go through ``prepare_batch`` (no label needed).
        teacher: the teacher network for ``"mean_taught"`` / ``"mean_teacher"``: an ``EMATeacher`` of ``network``
            attached to this engine (``teacher.attach(trainer)``), which updates it and checkpoints it. Any module
            works; it is called under :meth:`autocast` and ``torch.no_grad``.
        perturbation: the teacher's input perturbation; default ``FlipAffinePerturbation()`` (random flips of every
            spatial axis with probability 0.5).
        seg_loss: the standard head's loss ``(logits, indices (B, *spatial)) -> scalar``; default
            ``torch.nn.CrossEntropyLoss`` with ``ignore_index``.
        consistency_loss: the mean-teacher term ``(student logits, teacher logits, mask) -> scalar``; default
            ``ConsistencyLoss("var")`` (squared difference of the softmax maps, summed over classes, mean over pixels).
        mlds_weight, consistency_weight, mil_weight: the weights ``w_mlds``, ``w_cons``, ``w_mil`` (default 1).
        ignore_index: label value of unannotated mask pixels, or ``None``.
        image_labels_key, box_mask_key: batch keys of the weak labels of the unlabelled batch.
        perturbation_seed: seed of the CPU generator that draws the perturbations (offset by the rank), registered
            as extra state ``"perturbation_rng"``; ``None`` uses the global random state.
        kwargs: the other arguments of :class:`MultiPassTrainer` (``epoch_length``, ``amp``, ``train_handlers``...).

    Raises:
        ValueError: when ``mode`` is unknown, a mode lacks its unlabelled loader or teacher, a weight is negative, or
            an affine perturbation is used with a loss that has no ``ignore_index``.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        network: torch.nn.Module,
        optimizer: Optimizer,
        loss_function: Callable | None = None,
        *,
        mode: str = "supervised",
        unlabelled_data_loader: Iterable | None = None,
        teacher: Callable | None = None,
        perturbation: FlipAffinePerturbation | None = None,
        seg_loss: Callable | None = None,
        consistency_loss: Callable | None = None,
        mlds_weight: float = 1.0,
        consistency_weight: float = 1.0,
        mil_weight: float = 1.0,
        ignore_index: int | None = None,
        image_labels_key: str = MLDSKeys.IMAGE_LABELS,
        box_mask_key: str = MLDSKeys.BOX_MASK,
        perturbation_seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        name = type(self).__name__
        if mode not in MLDS_MODES:
            raise ValueError(f"{name}: `mode` must be one of {MLDS_MODES}, got {mode!r}.")
        if mode in _UNLABELLED_MODES and unlabelled_data_loader is None:
            raise ValueError(f"{name}: mode {mode!r} needs `unlabelled_data_loader`.")
        if mode in _TEACHER_MODES and teacher is None:
            raise ValueError(f"{name}: mode {mode!r} needs a `teacher` (an EMATeacher of the network).")
        weights = {"mlds_weight": mlds_weight, "consistency_weight": consistency_weight, "mil_weight": mil_weight}
        for key, value in weights.items():
            if not value >= 0:
                raise ValueError(f"{name}: `{key}` must be non-negative, got {value}.")
        if loss_function is None:
            loss_function = MultiLabelDeepSupervisionLoss(
                ignore_index=PSEUDO_IGNORE_INDEX if ignore_index is None else ignore_index
            )
        perturbation = FlipAffinePerturbation() if perturbation is None else perturbation
        self.pseudo_ignore_index = getattr(loss_function, "ignore_index", None)
        if mode == "mean_taught" and perturbation.has_affine and self.pseudo_ignore_index is None:
            raise ValueError(
                f"{name}: an affine perturbation leaves pixels without teacher content, which the pseudo-labels mark "
                "with the loss's ignore_index; `loss_function` has none (give it `ignore_index`)."
            )
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            network=network,
            optimizer=optimizer,
            loss_function=loss_function,
            **kwargs,
        )
        self.mode = mode
        self.unlabelled_data_loader = unlabelled_data_loader
        self.unlabelled: UnlabeledStream | None = None
        if unlabelled_data_loader is not None:
            # an epoch without length (an iterable labelled loader) may draw any number of batches
            draws = self.state.epoch_length if self.state.epoch_length is not None else 1_000_000
            passes = passes_per_epoch(unlabelled_data_loader, draws)
            self.unlabelled = UnlabeledStream(unlabelled_data_loader, "unlabelled_data_loader", passes_per_epoch=passes)
            self.add_event_handler(Events.EPOCH_STARTED, self._start_unlabelled_epoch)
        self.teacher = teacher
        self.perturbation = perturbation
        if seg_loss is None:
            # -100 is CrossEntropyLoss's own "nothing ignored" default
            seg_loss = torch.nn.CrossEntropyLoss(ignore_index=-100 if ignore_index is None else ignore_index)
        self.seg_loss = seg_loss
        self.consistency_loss = consistency_loss or ConsistencyLoss(variant="var")
        self.mil_loss = MultipleInstanceLoss()
        self.mlds_weight = float(mlds_weight)
        self.consistency_weight = float(consistency_weight)
        self.mil_weight = float(mil_weight)
        self.ignore_index = ignore_index
        self.image_labels_key = image_labels_key
        self.box_mask_key = box_mask_key
        self._perturbation_rng: torch.Generator | None = None
        if perturbation_seed is not None:
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
            self._perturbation_rng = torch.Generator(device="cpu")
            self._perturbation_rng.manual_seed(int(perturbation_seed) + rank)
            self.register_extra_state(PERTURBATION_RNG_STATE, GeneratorState(self._perturbation_rng))

    def compute_loss(self, batch: TrainingBatch) -> TrainingStep:
        """
        The loss of the mode on one labelled batch (and one unlabelled batch drawn from ``unlabelled_data_loader``).

        Returns:
            ``TrainingStep`` with the labelled batch's standard logits as ``pred``, the extra outputs and the terms.

        Raises:
            ValueError: when the labelled and unlabelled images differ in shape apart from the batch size, or a mode
                that needs image-level labels gets a batch without them.
        """
        labels = _index_map(batch.targets, batch.inputs.ndim)
        unlabelled = self._next_unlabelled() if self.mode in _UNLABELLED_MODES else None
        inputs = batch.inputs
        if unlabelled is not None:
            if unlabelled.inputs.shape[1:] != inputs.shape[1:]:
                raise ValueError(
                    f"{type(self).__name__}: unlabelled images {tuple(unlabelled.inputs.shape)} and labelled images "
                    f"{tuple(inputs.shape)} must have the same channels and spatial size."
                )
            inputs = torch.cat([inputs, unlabelled.inputs.to(inputs.dtype)], dim=0)
        logits, levels = split_hierarchical_output(self.forward(inputs, *batch.args, **batch.kwargs))
        logits, levels = logits.float(), to_float32(levels)
        n = batch.inputs.shape[0]
        terms = {"ce": self.seg_loss(logits[:n], labels[:, 0])}
        loss = terms["ce"]
        outputs: dict[str, Any] = {MLDSKeys.PRED_LEVELS: [z[:n].detach() for z in levels]}

        if self.mode in ("self_taught", "mean_taught"):
            pseudo, teacher_logits, valid = self._pseudo_labels(unlabelled, logits[n:])
            outputs[MLDSKeys.PSEUDO_LABEL], outputs[MLDSKeys.VALIDITY_MASK] = pseudo, valid
            terms["mlds"] = self.loss_function(levels, torch.cat([labels, pseudo.to(labels.dtype)], dim=0))
        elif self.mode in _MLDS_LABELLED_MODES:
            terms["mlds"] = self.loss_function([z[:n] for z in levels], labels)
        if "mlds" in terms:
            loss = loss + self.mlds_weight * terms["mlds"]

        if self.mode in ("mil", "ds_mil"):
            image_labels = self._weak_label(unlabelled, self.image_labels_key, required=True)
            mil_input = logits[n:] if self.mode == "mil" else [z[n:] for z in levels]
            terms["mil"] = self.mil_loss(mil_input, image_labels)
            loss = loss + self.mil_weight * terms["mil"]

        if self.mode in _TEACHER_MODES:
            if self.mode == "mean_teacher":
                _, teacher_logits, valid = self._teacher_prediction(unlabelled.inputs)
                outputs[MLDSKeys.VALIDITY_MASK] = valid
            terms["consistency"] = self.consistency_loss(logits[n:], teacher_logits, valid)
            loss = loss + self.consistency_weight * terms["consistency"]
        return TrainingStep(loss, logits[:n], outputs, {k: v.detach() for k, v in terms.items()})

    def _start_unlabelled_epoch(self, engine: MultiLabelDeepSupervisionTrainer) -> None:
        self.unlabelled.start_epoch(engine.state.epoch)  # type: ignore[union-attr]

    def _next_unlabelled(self) -> TrainingBatch:
        """The next unlabelled batch on the device; the loader restarts when it runs out and at every epoch."""
        return self.prepare(self.unlabelled.next())  # type: ignore[union-attr]

    def _weak_label(self, unlabelled: TrainingBatch, key: str, required: bool = False) -> torch.Tensor | None:
        data = unlabelled.data
        value = data.get(key) if isinstance(data, dict) else None
        if value is None:
            if required:
                raise ValueError(
                    f"{type(self).__name__}: mode {self.mode!r} needs batch[{key!r}] (image-level labels)."
                )
            return None
        return as_plain_tensor(torch.as_tensor(value), f"batch[{key!r}]").to(unlabelled.inputs.device)

    def _teacher_prediction(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The teacher's standard logits on the perturbed images, mapped back; returns (perturbed, logits, valid)."""
        spatial = tuple(images.shape[2:])
        params = self.perturbation.draw(images.shape[0], spatial, self._perturbation_rng)
        perturbed = self.perturbation.apply(images, params)
        with torch.no_grad(), self.autocast():
            teacher_out = self.teacher(perturbed)  # type: ignore[misc]
        teacher_logits = split_hierarchical_output(teacher_out)[0].float()
        # logits, not probabilities, are mapped back: pixels without content get 0 logits, not log(0)
        restored = self.perturbation.invert(teacher_logits, params)
        valid = self.perturbation.validity(params, spatial, images.device)
        return perturbed, restored, valid

    def _pseudo_labels(
        self, unlabelled: TrainingBatch, student_logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Pseudo-labels of the unlabelled batch: from the student (Self-Taught) or the teacher (Mean-Taught)."""
        teacher_logits = valid = None
        if self.mode == "mean_taught":
            _, teacher_logits, valid = self._teacher_prediction(unlabelled.inputs)
            source = teacher_logits
        else:
            source = student_logits.detach()
        pseudo = restricted_pseudo_labels(
            source, self._weak_label(unlabelled, self.image_labels_key), self._weak_label(unlabelled, self.box_mask_key)
        )
        if valid is not None and self.pseudo_ignore_index is not None:
            pseudo = pseudo.masked_fill(valid < 0.5, self.pseudo_ignore_index)
        return pseudo, teacher_logits, valid


def _index_map(targets: Any, image_ndim: int) -> torch.Tensor:
    """The mask ``(B, 1, *spatial)`` or ``(B, *spatial)`` as an int64 class-index map ``(B, 1, *spatial)``."""
    if targets is None:
        raise ValueError("MultiLabelDeepSupervisionTrainer: the labelled batch has no label.")
    labels = as_plain_tensor(torch.as_tensor(targets), "label")
    if labels.ndim == image_ndim - 1:
        labels = labels.unsqueeze(1)
    return labels.round().long() if labels.is_floating_point() else labels.long()
