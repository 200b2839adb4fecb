"""MaskContrast's network: a segmentation trunk whose last layer is replaced by an embedding and a saliency head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.layers import Conv
from monai.networks.nets import BasicUNet
from torch import nn

__all__ = ["MaskContrastNet", "TRUNK_PREFIX"]

#: the prefix of the trunk's weights in :class:`MaskContrastNet`'s ``state_dict``
TRUNK_PREFIX = "trunk."


def _get_submodule(module: nn.Module, name: str) -> nn.Module:
    try:
        return module.get_submodule(name)
    except AttributeError as err:
        raise ValueError(
            f"MaskContrastNet: the trunk {type(module).__name__} has no layer {name!r} to replace (`last_layer`)."
        ) from err


class MaskContrastNet(nn.Module):
    """
    The network of "Unsupervised Semantic Segmentation by Contrasting Object Mask Proposals" (Van Gansbeke et al.,
    ICCV 2021): an encoder-decoder trunk whose output layer is replaced by two parallel 1×1 convolutions, an
    embedding head of ``embedding_dim`` channels and a saliency head (one channel, no bias, as the reference).

    The trunk is any segmentation network whose last layer (``last_layer``, a convolution with ``in_channels``)
    maps its features to the classes: MONAI's ``BasicUNet`` by default (``final_conv``), or e.g. our
    ``LeViTUNet`` (``last_layer="head"``, its 3×3 output convolution; its final upsampling then applies to the
    trunk features). That layer becomes ``nn.Identity``, so the trunk's weights keep the names of the
    segmentation network; :func:`~monai_masksup.networks.load_pretrained_trunk` hands them to MaskSup
    fine-tuning with MONAI's ``copy_model_state``, the heads excluded.

    Args:
        trunk: the segmentation network (its ``last_layer`` is replaced in place); ``None`` builds a
            ``BasicUNet(spatial_dims, in_channels, 1, features)``.
        last_layer: name of the trunk's output layer (a dotted path for a nested one).
        embedding_dim: channels of the embedding head (32, the reference's).
        spatial_dims: 2 or 3, the dimension of the heads (and of the default trunk).
        in_channels: input channels of the default trunk.
        features: ``BasicUNet`` features of the default trunk (the last one is the trunk's output channels).

    Returns (``forward``):
        ``(embedding, saliency_logit)``: ``(B, embedding_dim, *spatial)`` (not normalised; the loss normalises)
        and ``(B, 1, *spatial)``.

    Raises:
        ValueError: when ``last_layer`` is not a layer of the trunk or has no ``in_channels``, or
            ``embedding_dim`` is not positive.
    """

    def __init__(
        self,
        trunk: nn.Module | None = None,
        last_layer: str = "final_conv",
        embedding_dim: int = 32,
        spatial_dims: int = 2,
        in_channels: int = 3,
        features: Sequence[int] = (32, 32, 64, 128, 256, 32),
    ) -> None:
        super().__init__()
        if int(embedding_dim) < 1:
            raise ValueError(f"MaskContrastNet: `embedding_dim` must be positive, got {embedding_dim}.")
        if trunk is None:
            trunk = BasicUNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=1, features=features)
        replaced = _get_submodule(trunk, last_layer)
        trunk_channels = getattr(replaced, "in_channels", None)
        if not isinstance(trunk_channels, int):
            raise ValueError(
                f"MaskContrastNet: the trunk's layer {last_layer!r} ({type(replaced).__name__}) has no integer "
                "`in_channels`; name the trunk's output convolution."
            )
        parent_name, _, child_name = last_layer.rpartition(".")
        parent = trunk.get_submodule(parent_name) if parent_name else trunk
        setattr(parent, child_name, nn.Identity())
        conv = Conv[Conv.CONV, spatial_dims]
        self.trunk = trunk
        self.last_layer = last_layer
        self.trunk_channels = trunk_channels
        self.embedding_dim = int(embedding_dim)
        self.embedding_head = conv(trunk_channels, self.embedding_dim, kernel_size=1)
        self.saliency_head = conv(trunk_channels, 1, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            x: ``(B, in_channels, *spatial)`` images.

        Returns:
            ``(embedding, saliency_logit)``, see the class.
        """
        features = self.trunk(x)
        return self.embedding_head(features), self.saliency_head(features)
