"""The linear probe evaluation of frozen pixel embeddings: a 1x1 convolution trained on top, mIoU out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from ignite.metrics import ConfusionMatrix, IoU, mIoU
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.utils import CommonKeys

__all__ = ["FrozenEmbedding", "LinearProbe", "LinearProbeResult", "train_linear_probe"]


class FrozenEmbedding(nn.Module):
    """
    A trained embedding network used read-only: always in eval mode (batch-norm statistics and dropout fixed,
    as the reference's ``freeze_batchnorm="all"``), run without autograd, so no training step can change it.

    The wrapped network is not modified (neither its ``requires_grad`` flags nor its mode are touched until the
    first call of :meth:`train` / ``forward``, which put it in eval mode).

    Args:
        network: maps ``(B, C_in, *spatial)`` images to ``(B, D, *spatial')`` embeddings, or to a tuple / list /
            dict holding them.
        output_key: which entry of a tuple / list / dict output is the embedding; ``None`` takes a tensor
            output as it is and entry 0 of a tuple or list.
    """

    def __init__(self, network: nn.Module, output_key: int | str | None = None) -> None:
        super().__init__()
        self.network = network
        self.output_key = output_key

    def train(self, mode: bool = True) -> FrozenEmbedding:
        super().train(mode)
        self.network.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.network.eval()
        with torch.no_grad():
            out: Any = self.network(x)
        if self.output_key is not None:
            out = out[self.output_key]
        elif isinstance(out, (tuple, list)):
            out = out[0]
        if not isinstance(out, torch.Tensor):
            raise TypeError(
                f"FrozenEmbedding: the network's output (or its entry output_key={self.output_key!r}) must be a "
                f"tensor, got {type(out).__name__}."
            )
        return out


class LinearProbe(nn.Module):
    """
    A 1x1 convolution (the only trainable layer) on the embeddings of a :class:`FrozenEmbedding`; the logits are
    resized to the input's spatial size (bilinear / trilinear) when the embeddings are coarser, as the reference.

    Args:
        network: the embedding network, wrapped in :class:`FrozenEmbedding`.
        embedding_dim: number of embedding channels ``D``.
        num_classes: number of classes (including background).
        spatial_dims: 2 or 3.
        output_key: see :class:`FrozenEmbedding`.
    """

    def __init__(
        self,
        network: nn.Module,
        embedding_dim: int,
        num_classes: int,
        spatial_dims: int = 2,
        output_key: int | str | None = None,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"LinearProbe: spatial_dims must be 2 or 3, got {spatial_dims}.")
        self.embedding = FrozenEmbedding(network, output_key=output_key)
        self.head = (nn.Conv2d if spatial_dims == 2 else nn.Conv3d)(embedding_dim, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, num_classes, *spatial)`` of images ``(B, C_in, *spatial)``."""
        embeddings = self.embedding(x)
        if embeddings.shape[1] != self.head.in_channels:
            raise ValueError(
                f"LinearProbe: the network gives {embeddings.shape[1]} embedding channels (shape "
                f"{tuple(embeddings.shape)}), but embedding_dim={self.head.in_channels}."
            )
        logits = self.head(embeddings)
        if logits.shape[2:] != x.shape[2:]:
            mode = "bilinear" if logits.ndim == 4 else "trilinear"
            logits = F.interpolate(logits, size=x.shape[2:], mode=mode, align_corners=False)
        return logits


class _ChannelLabelCrossEntropy(nn.Module):
    """Cross-entropy of logits ``(B, C, *spatial)`` against MONAI-style labels ``(B, 1, *spatial)``."""

    def __init__(self, ignore_index: int) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, label[:, 0].long(), ignore_index=self.ignore_index)


@dataclass
class LinearProbeResult:
    """Outcome of :func:`train_linear_probe`.

    Attributes:
        miou: mean IoU over the classes on the validation data (pixels of all images counted together).
        class_iou: ``(num_classes,)`` IoU of every class.
        probe: the trained :class:`LinearProbe`.
    """

    miou: float
    class_iou: torch.Tensor
    probe: LinearProbe


def _confusion_output(output: dict) -> tuple[torch.Tensor, torch.Tensor]:
    return output[CommonKeys.PRED], output[CommonKeys.LABEL][:, 0].long()


def train_linear_probe(
    network: nn.Module,
    embedding_dim: int,
    num_classes: int,
    train_loader: Iterable,
    val_loader: Iterable,
    max_epochs: int = 10,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    device: str | torch.device = "cpu",
    spatial_dims: int = 2,
    output_key: int | str | None = None,
    ignore_index: int = 255,
) -> LinearProbeResult:
    """
    Linear probe evaluation of "Unsupervised Semantic Segmentation by Contrasting Object Mask Proposals"
    (Van Gansbeke et al., ICCV 2021): the embedding network is frozen, a 1x1 convolution is trained on its
    embeddings with pixel-wise cross-entropy (SGD, the reference's lr 0.1, momentum 0.9, weight decay 1e-4),
    and the mIoU of the probe on the validation data is returned.

    Training is MONAI's ``SupervisedTrainer`` and validation MONAI's ``SupervisedEvaluator`` with Ignite's
    ``ConfusionMatrix`` / ``mIoU`` (one confusion matrix over all validation pixels, as the reference's mIoU;
    labels equal to ``ignore_index`` or otherwise outside ``[0, num_classes)`` are not counted). Unlike the
    reference, which keeps the probe of the best validation epoch, the probe after ``max_epochs`` is scored,
    so the validation data never selects anything.

    Args:
        network: the trained embedding network; it is only read (see :class:`FrozenEmbedding`).
        embedding_dim: number of embedding channels ``D`` of ``network``'s output.
        num_classes: number of classes including background.
        train_loader: batches ``{"image": (B, C_in, *spatial), "label": (B, 1, *spatial)}`` with integer class
            labels.
        val_loader: validation batches in the same form.
        max_epochs: training epochs of the probe.
        lr: SGD learning rate.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        device: device of training and validation.
        spatial_dims: 2 or 3.
        output_key: which entry of a tuple / list / dict network output is the embedding.
        ignore_index: label value left out of the loss and the mIoU.

    Returns:
        :class:`LinearProbeResult`.
    """
    device = torch.device(device)
    probe = LinearProbe(network, embedding_dim, num_classes, spatial_dims, output_key).to(device)
    optimizer = torch.optim.SGD(probe.head.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    trainer = SupervisedTrainer(
        device=device,
        max_epochs=max_epochs,
        train_data_loader=train_loader,
        network=probe,
        optimizer=optimizer,
        loss_function=_ChannelLabelCrossEntropy(ignore_index),
        decollate=False,
    )
    trainer.run()
    confusion = ConfusionMatrix(num_classes, output_transform=_confusion_output, device=device)
    evaluator = SupervisedEvaluator(
        device=device,
        val_data_loader=val_loader,
        network=probe,
        key_val_metric={"miou": mIoU(confusion)},
        additional_metrics={"class_iou": IoU(confusion)},
        decollate=False,
    )
    evaluator.run()
    metrics = evaluator.state.metrics
    return LinearProbeResult(miou=float(metrics["miou"]), class_iou=metrics["class_iou"].cpu(), probe=probe)
