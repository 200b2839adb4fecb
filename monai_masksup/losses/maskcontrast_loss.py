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


def _flat_ids(mask: torch.Tensor, batch: int, pixels: int, name: str) -> torch.Tensor:
    """A mask proposal ``(B, 1, *spatial)`` or ``(B, *spatial)`` as int64 object ids ``(B, pixels)``."""
    mask = as_plain_tensor(mask, name)
    if mask.shape[0] != batch or mask.numel() != batch * pixels:
        raise ValueError(
            f"{name} of shape {tuple(mask.shape)} does not match the embeddings' batch {batch} and "
            f"{pixels} pixels per image; expected (B, 1, *spatial) or (B, *spatial)."
        )
    ids = mask.reshape(batch, pixels)
    ids = ids.round().long() if ids.is_floating_point() else ids.long()
    if bool((ids < 0).any()):
        raise ValueError(f"{name} must hold 0 (background) and object ids 1, 2, ..., got negative values.")
    return ids


def _check_embedding(embedding: torch.Tensor, name: str) -> torch.Tensor:
    embedding = as_plain_tensor(embedding, name)
    if embedding.ndim < 3:
        raise ValueError(f"{name} must be (B, D, *spatial), got shape {tuple(embedding.shape)}.")
    return embedding.float()


def mask_prototypes(embedding: torch.Tensor, mask: torch.Tensor, num_objects: int | None = None) -> torch.Tensor:
    """
    One prototype per object: the L2-normalised sum of the L2-normalised embeddings inside its mask.

    Args:
        embedding: ``(B, D, *spatial)`` embeddings (not normalised).
        mask: ``(B, 1, *spatial)`` or ``(B, *spatial)`` mask proposals: 0 = background, 1 = the object (one per
            image, the reference's saliency mask), or object ids ``1..n`` (several objects per image, e.g. one
            per connected component).
        num_objects: ``n``, the number of object ids per image; ``None`` takes the mask's maximum.

    Returns:
        ``(B * n, D)`` prototypes, row ``b * n + id - 1`` for object ``id`` of image ``b`` (``(B, D)`` for binary
        masks); an object absent from the mask gets the zero vector.

    Raises:
        ValueError: when the shapes do not match, or the mask holds negative values.
    """
    embedding = _check_embedding(embedding, "embedding")
    batch, dim = embedding.shape[:2]
    flat = F.normalize(embedding, dim=1).reshape(batch, dim, -1)
    ids = _flat_ids(mask, batch, flat.shape[2], "mask")
    n = max(int(ids.max()), 1) if num_objects is None else int(num_objects)
    members = F.one_hot(ids.clamp_max(n), n + 1)[..., 1:].to(flat.dtype)  # (B, pixels, n)
    return F.normalize(torch.bmm(flat, members).transpose(1, 2).reshape(batch * n, dim), dim=1)


def contrastive_logits(
    query_embedding: torch.Tensor,
    query_mask: torch.Tensor,
    prototypes: torch.Tensor,
    negatives: torch.Tensor | None,
    temperature: float,
    present: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Logits of every salient query pixel against the batch's prototypes and the queue's negatives.

    Args:
        query_embedding: ``(B, D, *spatial)`` query-view embeddings (not normalised; L2-normalised per pixel here).
        query_mask: ``(B, 1, *spatial)`` or ``(B, *spatial)`` query mask proposal, 0 or object ids ``1..n``; every
            pixel of an object gives a row.
        prototypes: ``(B * n, D)`` prototypes of :func:`mask_prototypes`: object ``id`` of image ``b`` is row
            ``b * n + id - 1`` (under ``torch.distributed``, the local batch's).
        negatives: ``(D, K)`` queue of past prototypes, or ``None`` for none.
        temperature: the softmax temperature ``T``.
        present: ``(B * n,)`` bool, the prototypes whose object the key view holds; the others are left out as
            columns, and the query pixels of their objects as rows (they have no positive). ``None``: all.

    Returns:
        ``(logits, targets)``: ``(R, P + K)`` logits ``[q·prototypes, q·negatives] / T`` of the ``R`` rows in
        flattened ``(b, *spatial)`` order over the ``P`` present prototypes, and ``(R,)`` int64 targets, the column
        of each row's own prototype (the image index ``b`` for binary masks).

    Raises:
        ValueError: when the shapes do not match.
    """
    query_embedding = _check_embedding(query_embedding, "query_embedding")
    batch, dim = query_embedding.shape[:2]
    q = F.normalize(query_embedding, dim=1).reshape(batch, dim, -1)
    pixels = q.shape[2]
    if prototypes.ndim != 2 or prototypes.shape[1] != dim or prototypes.shape[0] % batch:
        raise ValueError(f"prototypes must be (B * n, {dim}) with B = {batch}, got shape {tuple(prototypes.shape)}.")
    n = prototypes.shape[0] // batch
    ids = _flat_ids(query_mask, batch, pixels, "query_mask").clamp_max(n)
    image = torch.arange(batch, device=ids.device).unsqueeze(1)
    owner = (image * n + ids - 1).reshape(-1)  # the prototype row of each pixel; -1 for background
    salient = ids.reshape(-1) > 0
    if present is not None:
        present = present.to(device=owner.device, dtype=torch.bool).reshape(-1)
        salient &= present[owner.clamp_min(0)]
        column = torch.cumsum(present.long(), 0) - 1  # the column of each present prototype
        prototypes = prototypes[present]
    else:
        column = torch.arange(batch * n, device=owner.device)
    rows = salient.nonzero().squeeze(1)
    q = q.permute(0, 2, 1).reshape(batch * pixels, dim).index_select(0, rows)
    targets = column[owner.index_select(0, rows)]
    columns = [prototypes.to(q).T]
    if negatives is not None:
        if negatives.ndim != 2 or negatives.shape[0] != dim:
            raise ValueError(f"negatives must be ({dim}, K), got shape {tuple(negatives.shape)}.")
        columns.append(negatives.to(q))
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

    1. The key view's embeddings (no gradient) give one prototype per object (per image for binary masks),
       :func:`mask_prototypes`.
    2. Every salient query pixel (L2-normalised) is scored against the batch's prototypes and the queue's past
       prototypes, divided by ``temperature``, :func:`contrastive_logits`; its target is its own object's
       prototype.
    3. Cross-entropy weighted per class by :func:`enet_class_weights` (weighted mean, as ``F.cross_entropy``).
    4. The saliency head is trained with :class:`BalancedBCEWithLogitsLoss` on the query mask.
    5. After the loss the batch's (present) prototypes (of every rank under ``torch.distributed``) enter the ``queue``;
       the logits used the queue from before.

    With binary masks (one object per image) this reproduces the reference's ``ContrastiveModel.forward`` and
    training step (pinned by ``maskcontrast_loss.npz``); the momentum update of the key network is the engine's
    (an ``EMATeacher``). Beyond the reference:

    - masks may hold object ids ``1..n`` (e.g. one per gland, ``MaskProposald(per_component=True)``): every
      object of every image has its own prototype, and its pixels are pulled towards it and pushed from the
      other objects' prototypes, of the same image too;
    - an object that the key view does not show (an empty key mask, an object cropped away) has no prototype:
      its query pixels give no row and nothing is enqueued for it (the reference keeps a zero prototype,
      scores every pixel against it and enqueues the zero vector);
    - batch size 1 works, and a batch without any salient query pixel gives a contrastive term 0 (attached to
      the graph).

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
            query_mask: ``(B, 1, *spatial)`` or ``(B, *spatial)`` mask proposal of the query view: 0 = background,
                1 = object, or object ids ``1..n``; the saliency target is ``query_mask > 0``.
            key_embedding: ``(B, D, *spatial)`` embeddings of the key view (key network; detached here).
            key_mask: the key view's mask proposal, shaped as ``query_mask``, with the same object ids.

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
        query_ids = _flat_ids(query_mask, batch, pixels, "query_mask")
        key_ids = _flat_ids(key_mask, batch, pixels, "key_mask")
        saliency = self.saliency_loss(saliency_logit, (query_ids > 0).float())
        # one host read per step: the number of objects per image sets the prototypes' layout
        n = max(int(torch.maximum(query_ids.max(), key_ids.max())), 1)
        with torch.no_grad():
            prototypes = mask_prototypes(key_embedding, key_ids, n)
            image = torch.arange(batch, device=key_ids.device).unsqueeze(1) * (n + 1)
            counts = torch.bincount((image + key_ids).reshape(-1), minlength=batch * (n + 1))
            present = counts.reshape(batch, n + 1)[:, 1:].reshape(-1) > 0
        negatives = None if self.queue is None else self.queue.negatives()
        logits, targets = contrastive_logits(
            query_embedding, query_ids, prototypes, negatives, self.temperature, present=present
        )
        if targets.numel() == 0:
            contrastive = query_embedding.sum() * 0.0
        else:
            weights = enet_class_weights(targets, logits.shape[1])
            contrastive = F.cross_entropy(logits, targets, weight=weights)
        if self.queue is not None and self.update_queue:
            self.queue.enqueue(prototypes[present])
        self.last_components = {"contrastive": contrastive.detach(), "saliency": saliency.detach()}
        return contrastive + self.saliency_weight * saliency

    def loss_components(self) -> dict[str, torch.Tensor]:
        """
        Returns:
            the unweighted terms of the last ``forward``, detached scalars: ``{"contrastive", "saliency"}``.
            Empty before the first call.
        """
        return dict(self.last_components)
