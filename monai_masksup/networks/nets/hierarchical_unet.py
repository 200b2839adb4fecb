"""The U-Net of multi-label deep supervision: a bilinear-upsampling U-Net with a classification head on every decoder
level."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution, UpSample
from monai.networks.layers.factories import Dropout
from monai.networks.nets.basic_unet import Down, TwoConv
from torch import nn

__all__ = ["HierarchicalUNet", "HierarchicalUpBlock", "LevelHead"]

_ACT = ("relu", {"inplace": True})
_NORM = "batch"

# typing.Union: TorchScript and Python 3.9 both need it spelled this way
HierarchicalOutput = Union[torch.Tensor, tuple[torch.Tensor, list[torch.Tensor]]]


class LevelHead(nn.Sequential):
    """
    The two-layer 1×1 classification head of :class:`HierarchicalUNet`: 1×1 conv to ``hidden_channels``, batch norm,
    ReLU, 1×1 conv to the classes.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: channels of the feature map it reads.
        out_channels: number of classes.
        hidden_channels: width of the hidden layer (64 in the reference).
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, hidden_channels: int = 64) -> None:
        super().__init__()
        self.add_module(
            "hidden", Convolution(spatial_dims, in_channels, hidden_channels, kernel_size=1, act=_ACT, norm=_NORM)
        )
        self.add_module("out", Convolution(spatial_dims, hidden_channels, out_channels, kernel_size=1, conv_only=True))


class HierarchicalUpBlock(nn.Module):
    """
    A decoder block of :class:`HierarchicalUNet`: (bi/tri)linear ×2 upsampling with ``align_corners=True``, zero
    padding at the far end to the skip connection's size (odd input sizes), concatenation ``[skip, up]`` and two
    3×3 conv–BN–ReLU blocks, the first halving the concatenated channels.

    MONAI's ``UpCat`` is the same block except for its second convolution's input width (``TwoConv`` keeps the
    output width in both convolutions) and its replicate padding, so it cannot reproduce the released network.

    Args:
        spatial_dims: number of spatial dimensions.
        up_channels: channels of the input to upsample.
        skip_channels: channels of the skip connection.
        out_channels: channels of the output.
    """

    def __init__(self, spatial_dims: int, up_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        cat_channels = up_channels + skip_channels
        self.upsample = UpSample(
            spatial_dims, up_channels, up_channels, 2, mode="nontrainable", pre_conv=None, interp_mode="linear",
            align_corners=True,
        )
        self.convs = nn.Sequential(
            Convolution(spatial_dims, cat_channels, cat_channels // 2, act=_ACT, norm=_NORM, padding=1),
            Convolution(spatial_dims, cat_channels // 2, out_channels, act=_ACT, norm=_NORM, padding=1),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: ``(B, up_channels, *size)``.
            skip: ``(B, skip_channels, *skip_size)`` with ``skip_size`` equal to ``2 * size`` or one more.

        Returns:
            ``(B, out_channels, *skip_size)``.
        """
        up = self.upsample(x)
        pad: list[int] = []
        for dim in range(skip.ndim - 1, 1, -1):
            diff = skip.shape[dim] - up.shape[dim]
            # centred like the reference: the odd pixel goes to the far end
            pad += [diff // 2, diff - diff // 2]
        up = F.pad(up, pad)
        return self.convs(torch.cat([skip, up], dim=1))


class HierarchicalUNet(nn.Module):
    """
    The network of "Every Annotation Counts: Multi-label Deep Supervision for Medical Image Segmentation" (Reiß et
    al., CVPR 2021), as released in ``Simael/mlds-unet`` (``unet.py::HierarchicalUNet`` with ``bilinear=True``).

    A U-Net with encoder widths 64-128-256-512, a 512-wide bottleneck, bilinear upsampling and decoder widths
    256/128/64/64, with a :class:`LevelHead` on the bottleneck and on every decoder level (the deep-supervision
    levels, coarse to fine: sizes 1/16, 1/8, 1/4, 1/2 and 1 of the input; the full-scale one is the pseudo-label
    head), plus the standard full-scale head (cross-entropy on masks) behind channel dropout. With 1 input channel
    and 4 classes it has 17,338,520 parameters, as the reference.

    - ``train()``: returns ``(logits, [level logits])``: the standard head ``(B, K, *spatial)`` and the five level
      outputs coarse to fine, for :class:`~monai_masksup.losses.MultiLabelDeepSupervisionLoss`.
    - ``eval()``: returns the standard head's logits only, so MONAI inferers, ``verify_net_in_out``, TorchScript
      export and MONAI Label see an ordinary segmentation network (as MONAI's ``SegResNetDS`` does).

    The encoder blocks are MONAI ``BasicUNet``'s ``TwoConv`` / ``Down`` (conv–BN–ReLU with bias, as the reference).
    Inputs of any size work (each level is ``floor`` of the one above, decoder outputs are zero-padded back); a
    side of at least 16 keeps every level non-empty; in training, batch norm needs more than one value per channel, so
    a batch of one needs a bottleneck of more than one cell (a side of at least 32).

    Args:
        in_channels: number of input channels.
        out_channels: number of classes ``K``, background included.
        spatial_dims: 2 (default, B-scans) or 3 (trilinear upsampling).
        features: encoder widths, the last one the bottleneck; default ``(64, 128, 256, 512, 512)``. Decoder level
            ``i`` outputs the width of the next skip connection, the last one ``features[0]``.
        head_channels: hidden width of every head (64).
        dropout: channel-dropout probability before the standard head (0.0, the reference's default).

    Raises:
        ValueError: when ``spatial_dims`` is not 2 or 3, or ``features`` has fewer than two entries.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 4,
        spatial_dims: int = 2,
        features: Sequence[int] = (64, 128, 256, 512, 512),
        head_channels: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"HierarchicalUNet: spatial_dims must be 2 or 3, got {spatial_dims}.")
        features = [int(f) for f in features]
        if len(features) < 2:
            raise ValueError(f"HierarchicalUNet: features needs at least two widths, got {features}.")
        self.spatial_dims = spatial_dims
        self.out_channels = out_channels
        self.encoder = nn.ModuleList([TwoConv(spatial_dims, in_channels, features[0], _ACT, _NORM, True)])
        for width_in, width_out in zip(features[:-1], features[1:]):
            self.encoder.append(Down(spatial_dims, width_in, width_out, _ACT, _NORM, True))
        skips = features[-2::-1]
        outs = skips[1:] + [features[0]]
        self.decoder = nn.ModuleList()
        up_width = features[-1]
        for skip_width, out_width in zip(skips, outs):
            self.decoder.append(HierarchicalUpBlock(spatial_dims, up_width, skip_width, out_width))
            up_width = out_width
        self.bottleneck_head = LevelHead(spatial_dims, features[-1], out_channels, head_channels)
        self.decoder_heads = nn.ModuleList([LevelHead(spatial_dims, w, out_channels, head_channels) for w in outs])
        self.dropout = Dropout[Dropout.DROPOUT, spatial_dims](p=dropout)
        self.standard_head = LevelHead(spatial_dims, features[0], out_channels, head_channels)

    def forward(self, x: torch.Tensor) -> HierarchicalOutput:
        """
        Args:
            x: ``(B, in_channels, *spatial)``.

        Returns:
            in training mode ``(logits, levels)``: ``logits`` ``(B, K, *spatial)`` of the standard head and
            ``levels`` the list of level logits, coarse to fine (the last at full size); in eval mode ``logits``.
        """
        skips: list[torch.Tensor] = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        skips.pop()
        levels: list[torch.Tensor] = []
        if self.training:
            levels.append(self.bottleneck_head(x))
        for block, head in zip(self.decoder, self.decoder_heads):
            x = block(x, skips.pop())
            if self.training:
                levels.append(head(x))
        logits = self.standard_head(self.dropout(x))
        if self.training:
            return logits, levels
        return logits
