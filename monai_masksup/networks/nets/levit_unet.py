"""LeViT-UNet, the transformer segmentation network of the MaskSup experiments.

Xu et al., "LeViT-UNet: Make Faster Encoders with Transformer for Medical Image Segmentation",
2021, as used by Zunair and Ben Hamza, "Masked Supervised Learning for Semantic Segmentation",
BMVC 2022 (official code: hasibzunair/masksup-segmentation, ``models/LeViTUNet{128s,192,384}.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from torch import nn

from monai_masksup.networks.blocks.levit_attention import (
    ConvBN,
    LeViTAttention,
    LeViTAttentionSubsample,
    LeViTMLP,
    LeViTResidual,
)

__all__ = ["LEVIT_SPECS", "LeViTUNet", "LeViTUNetDecoderBlock"]

# LeViT ImageNet architectures (facebookresearch/LeViT ``specification``): stage widths, key
# dimension, heads per stage, attention+MLP pairs per stage, stochastic depth.
LEVIT_SPECS: dict[str, dict] = {
    "128s": {"embed_dim": (128, 256, 384), "key_dim": 16, "num_heads": (4, 6, 8), "depth": (2, 3, 4), "drop_path": 0.0},
    "192": {"embed_dim": (192, 288, 384), "key_dim": 32, "num_heads": (3, 5, 6), "depth": (4, 4, 4), "drop_path": 0.0},
    "384": {"embed_dim": (384, 512, 768), "key_dim": 32, "num_heads": (6, 9, 12), "depth": (4, 4, 4), "drop_path": 0.1},
}

_IMG_SIZE = 224
_PATCH = 16
_DECODER_CHANNELS = (512, 256, 128)


def _upsample2x(x: torch.Tensor) -> torch.Tensor:
    # nn.UpsamplingBilinear2d semantics (align_corners=True), as in the reference decoder; the scale
    # is a float because TorchScript types interpolate's scale_factor as float
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)


class LeViTUNetDecoderBlock(nn.Module):
    """×2 bilinear upsampling followed by two 3×3 conv-BN-ReLU layers.

    Args:
        in_channels: input channels (decoder features already concatenated with the skip).
        out_channels: output channels.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = Convolution(2, in_channels, out_channels, kernel_size=3, act="RELU", norm="BATCH", bias=False)
        self.conv2 = Convolution(2, out_channels, out_channels, kernel_size=3, act="RELU", norm="BATCH", bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, H, W)`` to ``(B, out_channels, 2H, 2W)``."""
        return self.conv2(self.conv1(_upsample2x(x)))


class LeViTUNet(nn.Module):
    """LeViT-UNet for 2D segmentation of 224×224 images.

    Encoder: the LeViT patch embedding, four stride-2 3×3 ``ConvBN`` stages (Hardswish between
    them; widths ``C/8, C/4, C/2, C`` with ``C`` the first stage width), whose outputs at 112, 56,
    28 and 14 pixels are kept as skips; then the three LeViT attention stages on 14×14, 7×7 and
    4×4 tokens, joined by the strided ``Subsample`` attention blocks (each followed by a residual
    MLP). Every stage output is brought to 14×14 and concatenated with the 14×14 stem output.
    Decoder: three :class:`LeViTUNetDecoderBlock` (512, 256, 128 channels), each input
    concatenated with the stem feature of its resolution, then a 3×3 convolution to
    ``out_channels`` at 112×112 and a final ×2 bilinear upsampling to 224×224.

    Module names: the encoder is ``patch_embed`` (a ``Sequential`` with the convolutions at
    indices 0, 2, 4, 6) and ``blocks`` (all attention/MLP blocks in order), exactly the layout of
    facebookresearch/LeViT, so ImageNet checkpoints load by name; see
    :func:`monai_masksup.networks.levit_weights.load_levit_imagenet_weights`. The decoder is
    ``decoder.{0,1,2}`` and the output convolution ``head``;
    :func:`monai_masksup.networks.levit_weights.load_masksup_checkpoint` maps the official MaskSup
    names (``cnn_b*``, ``block_*``, ``decoderBlock_*``, ``segmentation_head``) onto these.

    The layer sizes reproduce the official MaskSup code: with ``out_channels=1`` the variants have
    52,154,213 ("384"), 19,894,150 ("192") and 15,894,627 ("128s") parameters. The stage-3 map
    is upsampled 4 → 8 → 16 and resized to 14 (all ``align_corners=True``) like the reference,
    rather than resized 4 → 14 at once, so that official weights give the reference outputs.

    The network compiles with ``torch.jit.script``, so a bundle exports it with
    ``python -m monai.bundle ckpt_export network_def --filepath models/model.ts ...``.

    Args:
        variant: LeViT encoder size, one of ``"384"``, ``"192"``, ``"128s"``.
        in_channels: input channels (3 to use the first ImageNet stem convolution).
        out_channels: output channels (logits).
        img_size: input side; must be 224 because the attention biases are tied to the
            14×14, 7×7 and 4×4 token grids.
        drop_path: stochastic-depth probability of the residual blocks; ``None`` uses the LeViT
            value of the variant (0.1 for "384", 0 otherwise).

    Raises:
        ValueError: on an unknown ``variant``, ``img_size != 224`` or non-positive channel counts.
    """

    def __init__(
        self,
        variant: str = "384",
        in_channels: int = 3,
        out_channels: int = 1,
        img_size: int = _IMG_SIZE,
        drop_path: float | None = None,
    ) -> None:
        super().__init__()
        variant = str(variant).lower()
        if variant not in LEVIT_SPECS:
            raise ValueError(f"LeViTUNet: unknown variant={variant!r}; choose one of {sorted(LEVIT_SPECS)}.")
        if img_size != _IMG_SIZE:
            raise ValueError(
                f"LeViTUNet: img_size={img_size} is not supported; the LeViT attention biases are built for "
                f"{_IMG_SIZE}x{_IMG_SIZE} inputs (14x14, 7x7 and 4x4 token grids)."
            )
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"LeViTUNet: in_channels={in_channels} and out_channels={out_channels} must be >= 1.")
        spec = LEVIT_SPECS[variant]
        embed_dim: Sequence[int] = spec["embed_dim"]
        key_dim: int = spec["key_dim"]
        drop = spec["drop_path"] if drop_path is None else float(drop_path)
        self.variant = variant
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.img_size = img_size

        c = embed_dim[0]
        stem_widths = (c // 8, c // 4, c // 2, c)
        layers: list[nn.Module] = []
        prev = in_channels
        for i, width in enumerate(stem_widths):
            layers.append(ConvBN(prev, width, kernel_size=3, stride=2, padding=1))
            if i < len(stem_widths) - 1:
                layers.append(nn.Hardswish())
            prev = width
        self.patch_embed = nn.Sequential(*layers)

        blocks: list[nn.Module] = []
        stage_ends: list[int] = []
        stage_resolutions: list[int] = []
        resolution = img_size // _PATCH
        for s, (dim, heads, depth) in enumerate(zip(embed_dim, spec["num_heads"], spec["depth"])):
            if s > 0:
                # LeViT shrinks with 4x value ratio and dim // key_dim heads, then a residual MLP
                down = LeViTAttentionSubsample(
                    embed_dim[s - 1],
                    dim,
                    key_dim,
                    embed_dim[s - 1] // key_dim,
                    attn_ratio=4.0,
                    stride=2,
                    resolution=resolution,
                )
                resolution = down.out_resolution
                blocks += [down, LeViTResidual(LeViTMLP(dim, 2.0), drop)]
            for _ in range(depth):
                blocks.append(LeViTResidual(LeViTAttention(dim, key_dim, heads, 2.0, resolution), drop))
                blocks.append(LeViTResidual(LeViTMLP(dim, 2.0), drop))
            stage_ends.append(len(blocks))
            stage_resolutions.append(resolution)
        self.blocks = nn.Sequential(*blocks)
        self.stage_ends: tuple[int, ...] = tuple(stage_ends)
        self.stage_resolutions: tuple[int, ...] = tuple(stage_resolutions)
        # stage-output grid side keyed by the index of the stage's last block: a plain Dict[int, int]
        # lets TorchScript pick the stage outputs while it unrolls the loop over ``blocks``
        self._grid_after_block = {end - 1: res for end, res in zip(self.stage_ends, self.stage_resolutions)}

        skips = (c // 2, c // 4, c // 8)
        dec_in = (c + sum(embed_dim), _DECODER_CHANNELS[0] + skips[0], _DECODER_CHANNELS[1] + skips[1])
        self.decoder = nn.ModuleList(LeViTUNetDecoderBlock(i, o) for i, o in zip(dec_in, _DECODER_CHANNELS))
        self.head = nn.Conv2d(_DECODER_CHANNELS[2] + skips[2], out_channels, kernel_size=3, padding=1)

    def _check_input(self, x: torch.Tensor) -> None:
        # written with list(...) and indexed sizes so that TorchScript compiles the same checks
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"LeViTUNet: expected input of shape (B, {self.in_channels}, {self.img_size}, {self.img_size}), "
                f"got {list(x.shape)}."
            )
        if x.shape[2] != self.img_size or x.shape[3] != self.img_size:
            raise ValueError(
                f"LeViTUNet: input spatial size {list(x.shape[2:])} is not supported; the LeViT attention biases "
                f"fix the input at {self.img_size}x{self.img_size} (resize or crop the images to that size)."
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segment ``x`` of shape ``(B, in_channels, 224, 224)``.

        Returns:
            logits of shape ``(B, out_channels, 224, 224)``.

        Raises:
            ValueError: when the channels or the spatial size of ``x`` do not match.
        """
        self._check_input(x)
        skips: list[torch.Tensor] = []
        h = x
        for layer in self.patch_embed:
            h = layer(h)
            if isinstance(layer, nn.Hardswish):
                skips.append(h)  # 112, 56 and 28 pixels
        stem = h  # (B, C, 14, 14)
        grid = stem.shape[-1]

        tokens = stem.flatten(2).transpose(1, 2)
        maps = [stem]
        for i, block in enumerate(self.blocks):
            tokens = block(tokens)
            if i in self._grid_after_block:
                res = self._grid_after_block[i]
                fmap = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, res, res)
                # repeated x2 steps then a resize reproduce the reference's 4 -> 8 -> 16 -> 14 path
                while fmap.shape[-1] < grid:
                    fmap = _upsample2x(fmap)
                if fmap.shape[-1] != grid:
                    fmap = F.interpolate(fmap, size=(grid, grid), mode="bilinear", align_corners=True)
                maps.append(fmap)

        y = torch.cat(maps, dim=1)
        for i, block in enumerate(self.decoder):
            y = torch.cat([block(y), skips[len(skips) - 1 - i]], dim=1)
        return _upsample2x(self.head(y))
