"""MaskContrast loss: pixel embeddings pulled towards their own object's prototype and pushed from the others'."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.nn.modules.loss import _Loss

from .balanced_bce import BalancedBCEWithLogitsLoss
from .logit_checks import as_plain_tensor
from .prototype_queue import PrototypeQueue

__all__ = ["MaskContrastLoss", "mask_prototypes", "contrastive_logits", "enet_class_weights"]


def _flat_mask(mask: torch.Tensor, batch: int, pixels: int, name: str) -> torch.Tensor:
    """A mask ``(B, 1, *spatial)`` or ``(B, *spatial)`` as float ``(B, pixels)``."""
    mask = as_plain_tensor(mask, name)
    if mask.shape[0] != batch or mask.numel() != batch * pixels:
        raise ValueError(
            f"{name} of shape {tuple(mask.shape)} does not match the embeddings' batch {batch} and "
            f"{pixels} pixels per image; expected (B, 1, *spatial) or (B, *spatial)."
        )
    return mask.reshape(batch, pixels).float()


def _check_embedding(embedding: torch.Tensor, name: str) -> torch.Tensor:
    embedding = as_plain_tensor(embedding, name)
    if embedding.ndim < 3:
        raise ValueError(f"{name} must be (B, D, *spatial), got shape {tuple(embedding.shape)}.")
    return embedding.float()


def mask_prototypes(embedding: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """
    One prototype per image: the L2-normalised sum of the L2-normalised embeddings inside its mask.

    Args:
        embedding: ``(B, D, *spatial)`` embeddings (not normalised).
        mask: ``(B, 1, *spatial)`` or ``(B, *spatial)`` mask proposal, 1 inside the object (values weight the
            sum, as in the reference).

    Returns:
        ``(B, D)`` prototypes; an image with an empty mask gets the zero vector.

    Raises:
        ValueError: when the shapes do not match.
    """
    embedding = _check_embedding(embedding, "embedding")
    batch, dim = embedding.shape[:2]
    flat = F.normalize(embedding, dim=1).reshape(batch, dim, -1)
    weights = _flat_mask(mask, batch, flat.shape[2], "mask").to(flat.dtype)
    return F.normalize(torch.bmm(flat, weights.unsqueeze(2)).squeeze(2), dim=1)


def contrastive_logits(
    query_embedding: torch.Tensor,
    query_mask: torch.Tensor,
    prototypes: torch.Tensor,
    negatives: torch.Tensor | None,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Logits of every salient query pixel against the batch's prototypes and the queue's negatives.

    Args:
        query_embedding: ``(B, D, *spatial)`` query-view embeddings (not normalised; L2-normalised per pixel here).
        query_mask: ``(B, 1, *spatial)`` or ``(B, *spatial)`` query mask; the pixels ``> 0`` give rows.
        prototypes: ``(P, D)`` prototypes, ``P >= B``: image ``b``'s own prototype is row ``b`` (under
            ``torch.distributed`` the local batch's prototypes).
        negatives: ``(D, K)`` queue of past prototypes, or ``None`` for none.
        temperature: the softmax temperature ``T``.

    Returns:
        ``(logits, targets)``: ``(R, P + K)`` logits ``[q·prototypes, q·negatives] / T`` of the ``R`` salient
        pixels in flattened ``(b, *spatial)`` order, and ``(R,)`` int64 targets, the image index ``b`` of each row.

    Raises:
        ValueError: when the shapes do not match.
    """
    query_embedding = _check_embedding(query_embedding, "query_embedding")
    batch, dim = query_embedding.shape[:2]
    q = F.normalize(query_embedding, dim=1).reshape(batch, dim, -1)
    pixels = q.shape[2]
    salient = _flat_mask(query_mask, batch, pixels, "query_mask").reshape(-1) > 0
    rows = salient.nonzero().squeeze(1)
    q = q.permute(0, 2, 1).reshape(batch * pixels, dim).index_select(0, rows)
    targets = torch.div(rows, pixels, rounding_mode="floor")
    if prototypes.ndim != 2 or prototypes.shape[1] != dim or prototypes.shape[0] < batch:
        raise ValueError(f"prototypes must be (P >= {batch}, {dim}), got shape {tuple(prototypes.shape)}.")
    columns = [prototypes.to(q.dtype).T]
    if negatives is not None:
        if negatives.ndim != 2 or negatives.shape[0] != dim:
            raise ValueError(f"negatives must be ({dim}, K), got shape {tuple(negatives.shape)}.")
        columns.append(negatives.to(q.dtype))
    logits = (q @ torch.cat(columns, dim=1)) / temperature
    return logits, targets


def enet_class_weights(targets: torch.Tensor, num_classes: int, c: float = 1.02) -> torch.Tensor:
    """
    ENet class weights ``w_c = 1 / ln(c + p_c)`` (Paszke et al., 2016), ``p_c`` = share of ``targets`` equal to
    ``c``; classes without a target (the queue's) get ``1 / ln(c)``.

    Args:
        targets: ``(R,)`` class indices.
        num_classes: number of classes ``C`` (the logits' columns).
        c: the constant of the ENet weighting (1.02, as MaskContrast).

    Returns:
        ``(C,)`` float32 weights.
    """
    counts = torch.bincount(targets.reshape(-1), minlength=num_classes)[:num_classes].float()
    share = counts / max(targets.numel(), 1)
    return 1.0 / torch.log(c + share)


class MaskContrastLoss(_Loss):
    """
    The MaskContrast pre-training loss of "Unsupervised Semantic Segmentation by Contrasting Object Mask
    Proposals" (Van Gansbeke et al., ICCV 2021):

        ``L = CE_w(logits, targets) + BalancedBCE(saliency_logit, query_mask)``

    1. The key view's embeddings (no gradient) give one prototype per image, :func:`mask_prototypes`.
    2. Every salient query pixel (L2-normalised) is scored against the batch's prototypes and the queue's past
       prototypes, divided by ``temperature``, :func:`contrastive_logits`; its target is its own image.
    3. Cross-entropy weighted per class by :func:`enet_class_weights` (weighted mean, as ``F.cross_entropy``).
    4. The saliency head is trained with :class:`BalancedBCEWithLogitsLoss` on the query mask.
    5. After the loss the batch's prototypes (of every rank under ``torch.distributed``) enter the ``queue``;
       the logits used the queue from before.

    This reproduces the reference's ``ContrastiveModel.forward`` and training step (pinned by
    ``maskcontrast_loss.npz``); the momentum update of the key network is the engine's (an ``EMATeacher``).
    Unlike the reference it works for batch size 1 and for a batch without any salient query pixel (the
    contrastive term is then 0, attached to the graph).

    Under ``torch.distributed`` each rank scores its pixels against its own batch's prototypes and the
    (shared) queue, as the reference does; only the enqueue gathers across ranks.

    After every ``forward`` the unweighted terms ``{"contrastive", "saliency"}`` are given, detached, by
    :meth:`loss_components` (the :class:`~monai_masksup.losses.LossComponents` protocol).

    Args:
        queue: the :class:`PrototypeQueue` of negatives, or ``None`` for no queue (only the batch's prototypes).
        temperature: softmax temperature ``T`` (0.5, the reference's).
        saliency_weight: weight of the saliency term (1, the reference's).
        update_queue: whether ``forward`` enqueues the prototypes (``False`` for an evaluation of the loss).

    Raises:
        ValueError: when ``temperature`` is not positive or ``saliency_weight`` is negative.
    """

    def __init__(
        self,
        queue: PrototypeQueue | None = None,
        temperature: float = 0.5,
        saliency_weight: float = 1.0,
        update_queue: bool = True,
    ) -> None:
        super().__init__()
        if not math.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"MaskContrastLoss: `temperature` must be positive, got {temperature}.")
        if not math.isfinite(saliency_weight) or saliency_weight < 0:
            raise ValueError(f"MaskContrastLoss: `saliency_weight` must be non-negative, got {saliency_weight}.")
        self.queue = queue
        self.temperature = float(temperature)
        self.saliency_weight = float(saliency_weight)
        self.update_queue = bool(update_queue)
        self.saliency_loss = BalancedBCEWithLogitsLoss()
        self.last_components: dict[str, torch.Tensor] = {}

    def forward(
        self,
        query_embedding: torch.Tensor,
        saliency_logit: torch.Tensor,
        query_mask: torch.Tensor,
        key_embedding: torch.Tensor,
        key_mask: torch.Tensor,
    ) -> torch.Tensor:
        """
        Args:
            query_embedding: ``(B, D, *spatial)`` embeddings of the query view (query network, with gradient).
            saliency_logit: ``(B, 1, *spatial)`` or ``(B, *spatial)`` saliency logits of the query view.
            query_mask: ``(B, 1, *spatial)`` or ``(B, *spatial)`` binary mask proposal of the query view.
            key_embedding: ``(B, D, *spatial)`` embeddings of the key view (key network; detached here).
            key_mask: the key view's binary mask proposal, shaped as ``query_mask``.

        Returns:
            ``contrastive + saliency_weight * saliency``, a scalar tensor.

        Raises:
            ValueError: when the shapes do not match.
        """
        query_embedding = _check_embedding(query_embedding, "query_embedding")
        key_embedding = _check_embedding(key_embedding, "key_embedding").detach()
        if key_embedding.shape != query_embedding.shape:
            raise ValueError(
                f"key_embedding shape {tuple(key_embedding.shape)} differs from query_embedding's "
                f"{tuple(query_embedding.shape)}."
            )
        batch, pixels = query_embedding.shape[0], query_embedding[0, 0].numel()
        saliency_logit = as_plain_tensor(saliency_logit, "saliency_logit")
        if saliency_logit.numel() != batch * pixels:
            raise ValueError(
                f"saliency_logit of shape {tuple(saliency_logit.shape)} does not match the embeddings' batch "
                f"{batch} and {pixels} pixels per image; expected (B, 1, *spatial) or (B, *spatial)."
            )
        saliency = self.saliency_loss(saliency_logit, _flat_mask(query_mask, batch, pixels, "query_mask"))
        with torch.no_grad():
            prototypes = mask_prototypes(key_embedding, key_mask)
        negatives = None if self.queue is None else self.queue.negatives()
        logits, targets = contrastive_logits(query_embedding, query_mask, prototypes, negatives, self.temperature)
        if targets.numel() == 0:
            contrastive = query_embedding.sum() * 0.0
        else:
            weights = enet_class_weights(targets, logits.shape[1])
            contrastive = F.cross_entropy(logits, targets, weight=weights)
        if self.queue is not None and self.update_queue:
            self.queue.enqueue(prototypes)
        self.last_components = {"contrastive": contrastive.detach(), "saliency": saliency.detach()}
        return contrastive + self.saliency_weight * saliency

    def loss_components(self) -> dict[str, torch.Tensor]:
        """
        Returns:
            the unweighted terms of the last ``forward``, detached scalars: ``{"contrastive", "saliency"}``.
            Empty before the first call.
        """
        return dict(self.last_components)
