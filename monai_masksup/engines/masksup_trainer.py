"""MaskSup training engine: a :class:`MultiPassTrainer` with a clean and a hole-masked branch."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

from monai_masksup.engines.extra_state import GeneratorState
from monai_masksup.engines.multi_pass_trainer import (
    MultiPassTrainer,
    TrainingBatch,
    TrainingStep,
    first_output,
    plain_tensor,
    to_float32,
)
from monai_masksup.keys import PluginKeys
from monai_masksup.transforms.apply_mask import apply_mask

__all__ = ["MaskSupTrainer", "BRANCH_MODES", "MaskSupKeys"]

BRANCH_MODES = ("separate", "batched")

#: the keys :class:`MaskSupTrainer` writes into ``engine.state.output``; kept under this name for existing code
MaskSupKeys = PluginKeys

#: name of the seeded mask generator in :meth:`MaskSupTrainer.extra_state`
MASK_RNG_STATE = "mask_rng"


class MaskSupTrainer(MultiPassTrainer):
    """
    Masked supervised training (MaskSup): every iteration runs the network on the image and on a copy with
    random irregular holes, and optimises a loss of both predictions and the label.

    H. Zunair, A. Ben Hamza, "Masked Supervised Learning for Semantic Segmentation", BMVC 2022.

    Its :meth:`compute_loss` (the rest of the iteration is :class:`MultiPassTrainer`'s):

    1. Hole masks ``(B, 1, *spatial)`` (1 = hole) are drawn by ``mask_generator`` directly on the image's device
       and ``image_masked = apply_mask(image, hole, fill_value, batched=True)``. If the batch already holds
       ``batchdata[masked_image_key]`` (e.g. from ``RandHoleMaskd``), that tensor is used instead.
    2. Both images go through the same ``network``: in ``"separate"`` mode with two forward passes (BatchNorm
       statistics per branch, as in the reference implementation), in ``"batched"`` mode with one forward pass
       over the concatenated ``2B`` batch (faster; BatchNorm statistics are shared by both branches).
    3. ``loss_function(pred_clean, pred_masked, label)`` receives the network's raw outputs cast to float32
       outside autocast: tensors, or for a deep-supervision network the full lists (so that
       ``MaskSupLoss(seg_loss=monai.losses.DeepSupervisionLoss(...))`` composes).

    ``engine.state.output`` holds the usual ``CommonKeys`` (``IMAGE``, ``LABEL``, ``PRED`` = clean-branch
    prediction, ``LOSS``) plus the loss terms ``"loss_seg"``, ``"loss_context"``, ``"loss_task_sim"`` as python
    floats (when the loss implements :class:`~monai_masksup.losses.LossComponents`, as ``MaskSupLoss`` does) and
    the detached tensors ``"image_masked"``, ``"pred_masked"`` and ``"hole_mask"`` (the latter only when the mask
    is known). ``PRED`` and ``"pred_masked"`` are the first (full-resolution) output of a deep-supervision
    network. The events are :class:`MultiPassTrainer`'s (``FORWARD_COMPLETED`` after both branches and the
    loss), so every MONAI handler works unchanged, e.g.
    ``StatsHandler(output_transform=monai.handlers.from_engine(["loss_seg"], first=True))``.

    Distributed: ``network`` may be a ``DistributedDataParallel`` wrapper. In ``"separate"`` mode both forward
    passes feed one loss and one backward, which DDP supports with ``find_unused_parameters=False`` (default).

    Args:
        device: an object representing the device on which to run.
        max_epochs: the total epoch number for trainer to run.
        train_data_loader: Ignite engine uses it to run, must be Iterable or torch.DataLoader.
        network: network to train; may be wrapped in ``DistributedDataParallel``.
        optimizer: the optimizer associated with the network.
        loss_function: callable ``(pred_clean, pred_masked, label) -> scalar``; default ``MaskSupLoss()``.
        mask_generator: a mask generator ``(batch_size, spatial_size, device=None, generator=None) ->
            (B, 1, *spatial)`` float hole mask, 1 = hole; default ``HoleMaskGenerator("high")``.
        branch_mode: ``"separate"`` (two forward passes, default) or ``"batched"`` (one pass over ``2B`` images).
            In ``"batched"`` mode extra network ``args``/``kwargs`` from ``prepare_batch`` are passed unchanged,
            so they must not depend on the batch size.
        masked_image_key: key of a batch-provided masked image; used instead of generating masks when present.
        hole_mask_key: key of the batch-provided hole mask that goes with ``masked_image_key`` (optional; only
            copied to ``engine.state.output["hole_mask"]``).
        fill_value: intensity written into the holes.
        mask_seed: seed of a CPU ``torch.Generator`` that draws the hole masks, so that runs are reproducible; under
            ``torch.distributed`` the seed is offset by the rank so that ranks draw different masks. The
            generator is registered as extra state ``"mask_rng"`` so that a checkpoint saves it. ``None`` uses
            the global torch random state.
        kwargs: the other arguments of :class:`MultiPassTrainer`, by keyword: ``epoch_length``, ``amp``,
            ``amp_kwargs``, ``accumulation_steps``, ``train_handlers``... as in ``monai.engines.SupervisedTrainer``
            (``iteration_update`` is refused).

    Raises:
        ValueError: When ``branch_mode`` is not one of ``"separate"``, ``"batched"``.
        ValueError: When ``accumulation_steps`` is not a positive integer, or ``iteration_update`` is given.
        TypeError: When ``mask_generator`` or ``loss_function`` is not callable.
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
        mask_generator: Callable | None = None,
        branch_mode: str = "separate",
        masked_image_key: str = PluginKeys.IMAGE_MASKED,
        hole_mask_key: str = PluginKeys.HOLE_MASK,
        fill_value: float = 0.0,
        mask_seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        if branch_mode not in BRANCH_MODES:
            raise ValueError(f"MaskSupTrainer: `branch_mode` must be one of {BRANCH_MODES}, got {branch_mode!r}.")
        if loss_function is None:
            from monai_masksup.losses import MaskSupLoss

            loss_function = MaskSupLoss()
        if mask_generator is None:
            from monai_masksup.transforms import HoleMaskGenerator

            mask_generator = HoleMaskGenerator("high")
        if not callable(loss_function):
            raise TypeError(f"MaskSupTrainer: `loss_function` must be callable, got {type(loss_function).__name__}.")
        if not callable(mask_generator):
            raise TypeError(f"MaskSupTrainer: `mask_generator` must be callable, got {type(mask_generator).__name__}.")
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            network=network,
            optimizer=optimizer,
            loss_function=loss_function,
            **kwargs,
        )
        self.mask_generator = mask_generator
        self.branch_mode = branch_mode
        self.masked_image_key = masked_image_key
        self.hole_mask_key = hole_mask_key
        self.fill_value = float(fill_value)
        self.mask_seed = mask_seed
        self._mask_rng: torch.Generator | None = None
        if mask_seed is not None:
            # the rank is known here: Workflow reads it at construction too
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
            self._mask_rng = torch.Generator(device="cpu")
            self._mask_rng.manual_seed(int(mask_seed) + rank)
            self.register_extra_state(MASK_RNG_STATE, GeneratorState(self._mask_rng))

    def mask_rng(self) -> torch.Generator | None:
        """
        Return the seeded generator of the hole masks, or ``None`` when ``mask_seed`` is ``None`` (then the global
        torch random state is used).

        It is a CPU generator: ``HoleMaskGenerator`` draws its few random parameters on the generator's device
        and renders the masks on the batch's device, so one seed gives the same masks on CPU and CUDA.
        """
        return self._mask_rng

    def compute_loss(self, batch: TrainingBatch) -> TrainingStep:
        """
        The MaskSup loss of one batch: mask, run both branches, ``loss_function(pred_clean, pred_masked, label)``.

        Args:
            batch: the prepared batch; ``batch.data`` may hold a batch-provided masked image.

        Returns:
            ``TrainingStep`` with the clean branch as ``pred`` and ``image_masked``, ``pred_masked``,
            ``hole_mask`` as extra outputs.

        Raises:
            ValueError: when a batch-provided masked image does not have the image's shape.
        """
        masked, hole = self._masked_inputs(batch)
        pred_clean, pred_masked = self._forward_branches(batch, masked)
        loss = self.loss_function(to_float32(pred_clean), to_float32(pred_masked), batch.targets)
        outputs = {
            PluginKeys.IMAGE_MASKED: masked,
            PluginKeys.PRED_MASKED: first_output(pred_masked),
            PluginKeys.HOLE_MASK: hole,
        }
        return TrainingStep(loss, pred_clean, outputs)

    def _masked_inputs(self, batch: TrainingBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return ``(image_masked, hole_mask)`` for ``batch.inputs``: from the batch when present, else generated."""
        inputs, data = batch.inputs, batch.data
        if isinstance(data, dict) and self.masked_image_key in data:
            masked = torch.as_tensor(data[self.masked_image_key])
            if masked.shape != inputs.shape:
                raise ValueError(
                    f"MaskSupTrainer: batch[{self.masked_image_key!r}] has shape {tuple(masked.shape)}, "
                    f"expected the image shape {tuple(inputs.shape)}."
                )
            masked = masked.to(device=inputs.device, non_blocking=self.non_blocking, **self.to_kwargs)
            if self.compile:
                masked = plain_tensor(masked, type(self).__name__)
            hole = data.get(self.hole_mask_key)
            if isinstance(hole, torch.Tensor):
                hole = hole.to(device=inputs.device, non_blocking=self.non_blocking)
            else:
                hole = None
            return masked, hole
        spatial_size = tuple(inputs.shape[2:])
        hole = self.mask_generator(inputs.shape[0], spatial_size, device=inputs.device, generator=self._mask_rng)
        dtype = inputs.dtype if inputs.is_floating_point() else torch.float32
        hole = torch.as_tensor(hole).to(device=inputs.device, dtype=dtype)
        return apply_mask(inputs, hole, self.fill_value, batched=True), hole

    def _forward_branches(self, batch: TrainingBatch, masked: torch.Tensor) -> tuple[Any, Any]:
        """Run the clean and the masked branch through the network; return both raw outputs."""
        if self.branch_mode == "batched":
            both = self.forward(torch.cat([batch.inputs, masked], dim=0), *batch.args, **batch.kwargs)
            return _split_batch(both, batch.inputs.shape[0])
        pred_clean = self.forward(batch.inputs, *batch.args, **batch.kwargs)
        pred_masked = self.forward(masked, *batch.args, **batch.kwargs)
        return pred_clean, pred_masked


def _split_batch(pred: torch.Tensor | Sequence[torch.Tensor], size: int) -> tuple[Any, Any]:
    """Split a ``2B`` output (a tensor or a deep-supervision list/tuple) into its first and second ``B`` items."""
    if isinstance(pred, (list, tuple)):
        halves = [torch.split(p, size, dim=0) for p in pred]
        return type(pred)(h[0] for h in halves), type(pred)(h[1] for h in halves)
    first, second = torch.split(pred, size, dim=0)
    return first, second
