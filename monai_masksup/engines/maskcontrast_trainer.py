"""MaskContrast pre-training engine: a :class:`MultiPassTrainer` with a query network and a momentum key network."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

from monai_masksup.engines.multi_pass_trainer import (
    MultiPassTrainer,
    TrainerEvents,
    TrainingBatch,
    TrainingStep,
    to_float32,
)
from monai_masksup.transforms.maskcontrast_views import KEY_VIEW_PREFIX

__all__ = ["MaskContrastTrainer", "KEY_NETWORK_STATE", "QUEUE_STATE"]

#: names of the key network and the prototype queue in :meth:`MaskContrastTrainer.extra_state`
KEY_NETWORK_STATE = "key_network"
QUEUE_STATE = "prototype_queue"


class MaskContrastTrainer(MultiPassTrainer):
    """
    MaskContrast pre-training (Van Gansbeke et al., "Unsupervised Semantic Segmentation by Contrasting Object Mask
    Proposals", ICCV 2021): the query network embeds the query view, the momentum key network the key view, and
    :class:`~monai_masksup.losses.MaskContrastLoss` contrasts them over the mask proposals.

    Its :meth:`compute_loss` (the rest of the iteration is :class:`MultiPassTrainer`'s):

    1. ``network(image)`` gives ``(embedding, saliency_logit)`` of the query view (``MaskContrastNet``), under
       autocast when ``amp``; the query view's mask proposal is the batch's ``label``.
    2. ``key_network(batch["key_image"])`` gives the key view's embedding, without gradient (``EMATeacher``
       runs under ``torch.no_grad``).
    3. ``loss_function(embedding, saliency_logit, label, key_embedding, batch["key_label"])`` in float32 outside
       autocast; the loss enqueues the batch's prototypes after it is computed.

    The key network is updated once per real optimizer step, ``key_network.update()`` on
    ``TrainerEvents.OPTIMIZER_STEPPED``: the reference updates it at the start of the next forward pass, which is
    the same sequence of weights. It should be
    ``monai_masksup.networks.EMATeacher(network, alpha=0.999, update_buffers=False, mode="train")``: parameters
    only (the key network's BatchNorm keeps its own statistics) and in train mode, as the reference.

    ``engine.state.output`` holds ``IMAGE`` (query view), ``LABEL`` (its proposal), ``PRED`` (the saliency
    logits), ``LOSS``, ``"loss_contrastive"``, ``"loss_saliency"`` and ``"key_image"``. The key network and the
    loss's queue are registered as extra state (``"key_network"``, ``"prototype_queue"``), so the plugin's
    checkpoint handler saves and restores them.

    Deviation: the reference shuffles the key batch across GPUs before the key network (so that BatchNorm
    statistics do not leak the pairing); this engine does not. On one device the shuffle changes nothing
    (BatchNorm statistics do not depend on the order of the batch); under DDP use ``SyncBatchNorm`` or accept
    the per-rank statistics.

    Args:
        device, max_epochs, train_data_loader, optimizer: as in ``monai.engines.SupervisedTrainer``.
        network: the query network, returning ``(embedding, saliency_logit)``; may be wrapped in DDP.
        key_network: the momentum key network: callable on images (returning ``(embedding, ...)`` or an embedding),
            with ``update()`` and ``state_dict()``/``load_state_dict()``.
        loss_function: a :class:`~monai_masksup.losses.MaskContrastLoss` (its ``queue``, if any, is moved to
            ``device``).
        key_image_key, key_mask_key: the batch keys of the key view and its proposal (``MaskContrastViewsd``'s).
        kwargs: the other arguments of :class:`MultiPassTrainer`, by keyword (``epoch_length``, ``amp``,
            ``train_handlers``...; ``iteration_update`` is refused).

    Raises:
        TypeError: when ``key_network`` has no ``update()`` or is not callable, or ``loss_function`` is not
            callable.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        network: torch.nn.Module,
        optimizer: Optimizer,
        loss_function: Any,
        *,
        key_network: Any,
        key_image_key: str = KEY_VIEW_PREFIX + "image",
        key_mask_key: str = KEY_VIEW_PREFIX + "label",
        **kwargs: Any,
    ) -> None:
        if not callable(key_network) or not callable(getattr(key_network, "update", None)):
            raise TypeError(
                "MaskContrastTrainer: `key_network` must be callable and have update() (an EMATeacher), got "
                f"{type(key_network).__name__}."
            )
        if not callable(loss_function):
            raise TypeError(
                f"MaskContrastTrainer: `loss_function` must be callable, got {type(loss_function).__name__}."
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
        self.key_network = key_network
        self.key_image_key = key_image_key
        self.key_mask_key = key_mask_key
        self.register_extra_state(KEY_NETWORK_STATE, key_network)
        queue = getattr(loss_function, "queue", None)
        if queue is not None:
            queue.to(device)
            self.register_extra_state(QUEUE_STATE, queue)
        self.add_event_handler(TrainerEvents.OPTIMIZER_STEPPED, self._update_key_network)

    def _update_key_network(self) -> None:
        self.key_network.update()

    def _key_view(self, batch: TrainingBatch) -> tuple[torch.Tensor, torch.Tensor]:
        data = batch.data
        missing = [k for k in (self.key_image_key, self.key_mask_key) if not isinstance(data, dict) or k not in data]
        if missing:
            raise KeyError(
                f"MaskContrastTrainer: the batch has no {missing}; make the two views with MaskContrastViewsd "
                "(the key view is stored under 'key_image' / 'key_label')."
            )
        device = batch.inputs.device
        image = torch.as_tensor(data[self.key_image_key]).to(device=device, non_blocking=self.non_blocking)
        mask = torch.as_tensor(data[self.key_mask_key]).to(device=device, non_blocking=self.non_blocking)
        if image.shape[0] != batch.inputs.shape[0] or image.shape[2:] != batch.inputs.shape[2:]:
            raise ValueError(
                f"MaskContrastTrainer: batch[{self.key_image_key!r}] has shape {tuple(image.shape)}, expected the "
                f"query view's {tuple(batch.inputs.shape)}."
            )
        return image, mask

    def compute_loss(self, batch: TrainingBatch) -> TrainingStep:
        """
        The MaskContrast loss of one batch: query and key embeddings, then ``loss_function``.

        Args:
            batch: the prepared batch: ``inputs`` = query view, ``targets`` = its proposal, ``data`` holds the key
                view.

        Returns:
            ``TrainingStep`` with the saliency logits as ``pred`` and the key view as extra output.

        Raises:
            KeyError: when the batch has no key view.
            ValueError: when the key view's shape differs from the query view's.
        """
        key_image, key_mask = self._key_view(batch)
        embedding, saliency_logit = self.forward(batch.inputs, *batch.args, **batch.kwargs)[:2]
        with self.autocast():
            key_out = self.key_network(key_image)
        key_embedding = key_out[0] if isinstance(key_out, (tuple, list)) else key_out
        loss = self.loss_function(
            to_float32(embedding), to_float32(saliency_logit), batch.targets, to_float32(key_embedding), key_mask
        )
        return TrainingStep(loss, saliency_logit, {self.key_image_key: key_image})
