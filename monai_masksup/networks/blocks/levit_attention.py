"""LeViT building blocks: BN-folded linear/conv layers, attention with learned relative-position
biases, the strided "Subsample" attention and the residual MLP.

LeViT is described in Graham et al., "LeViT: a Vision Transformer in ConvNet's Clothing for Faster
Inference", ICCV 2021 (reference code: facebookresearch/LeViT, ``levit.py``). Sub-module names
(``c``/``bn``, ``qkv``, ``kv``, ``q.1``, ``proj.1``, ``attention_biases``, the residual's ``m``)
follow that code so that its ImageNet checkpoints load by name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.layers import DropPath
from torch import nn

__all__ = [
    "ConvBN",
    "LinearBN",
    "LeViTResidual",
    "LeViTMLP",
    "LeViTAttention",
    "LeViTAttentionSubsample",
    "relative_offset_index",
]


class ConvBN(nn.Sequential):
    """Bias-free ``Conv2d`` followed by ``BatchNorm2d`` (LeViT's ``Conv2d_BN``).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: convolution kernel size.
        stride: convolution stride.
        padding: zero padding.
        bn_weight_init: initial value of the batch-norm scale.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        bn_weight_init: float = 1.0,
    ) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False))
        bn = nn.BatchNorm2d(out_channels)
        nn.init.constant_(bn.weight, bn_weight_init)
        nn.init.zeros_(bn.bias)
        self.add_module("bn", bn)


class LinearBN(nn.Module):
    """Bias-free ``Linear`` followed by ``BatchNorm1d`` over all tokens (LeViT's ``Linear_BN``).

    Args:
        in_features: input features.
        out_features: output features.
        bn_weight_init: initial value of the batch-norm scale (0 makes a residual branch start as
            the identity, as LeViT does for the last layer of every residual block).
    """

    def __init__(self, in_features: int, out_features: int, bn_weight_init: float = 1.0) -> None:
        super().__init__()
        self.c = nn.Linear(in_features, out_features, bias=False)
        self.bn = nn.BatchNorm1d(out_features)
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.zeros_(self.bn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map tokens ``(B, N, in_features)`` to ``(B, N, out_features)``."""
        y = self.c(x)
        # batch statistics are taken over batch and tokens together, as in LeViT
        return self.bn(y.flatten(0, 1)).reshape_as(y)


class LeViTResidual(nn.Module):
    """``x + drop_path(m(x))``; the wrapped module is stored as ``m`` (LeViT's ``Residual``).

    Args:
        m: residual branch mapping ``(B, N, C)`` to ``(B, N, C)``.
        drop_path: per-sample stochastic-depth probability used in training.
    """

    def __init__(self, m: nn.Module, drop_path: float = 0.0) -> None:
        super().__init__()
        self.m = m
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Add the (randomly dropped) branch output to ``x``."""
        return x + self.drop_path(self.m(x))


class LeViTMLP(nn.Sequential):
    """Token MLP ``LinearBN -> Hardswish -> LinearBN`` (indices 0 and 2 hold the weights).

    Args:
        dim: token width.
        ratio: hidden width is ``int(dim * ratio)``.
    """

    def __init__(self, dim: int, ratio: float = 2.0) -> None:
        hidden = int(dim * ratio)
        super().__init__(LinearBN(dim, hidden), nn.Hardswish(), LinearBN(hidden, dim, bn_weight_init=0.0))


def relative_offset_index(
    query_resolution: int, key_resolution: int, stride: int = 1
) -> tuple[torch.Tensor, int]:
    """Index of the learned bias for every (query, key) pair of a square token grid.

    Query ``(qy, qx)`` sits at key position ``(stride * qy, stride * qx)``; a pair's offset is
    ``(|stride*qy - ky|, |stride*qx - kx|)``. Distinct offsets are numbered in order of first
    appearance while queries and keys run in row-major order, which is the column order of the
    ``attention_biases`` tensors in LeViT checkpoints.

    Args:
        query_resolution: side of the query grid.
        key_resolution: side of the key grid.
        stride: spacing of the queries on the key grid.

    Returns:
        ``(index, num_offsets)``: a ``(query_resolution**2, key_resolution**2)`` long tensor and
        the number of distinct offsets.
    """
    qy, qx = torch.meshgrid(torch.arange(query_resolution), torch.arange(query_resolution), indexing="ij")
    ky, kx = torch.meshgrid(torch.arange(key_resolution), torch.arange(key_resolution), indexing="ij")
    dy = (stride * qy.reshape(-1, 1) - ky.reshape(1, -1)).abs()
    dx = (stride * qx.reshape(-1, 1) - kx.reshape(1, -1)).abs()
    span = int(max(dx.max(), dy.max())) + 1
    code = (dy * span + dx).reshape(-1)
    # renumber the offset codes by first appearance (torch.unique alone would sort them)
    uniq, inverse = torch.unique(code, return_inverse=True)
    first_seen = torch.full((uniq.numel(),), code.numel(), dtype=torch.long)
    first_seen.scatter_reduce_(0, inverse, torch.arange(code.numel()), reduce="amin")
    rank = torch.empty_like(first_seen)
    rank[torch.argsort(first_seen)] = torch.arange(uniq.numel())
    return rank[inverse].reshape(dy.shape), int(uniq.numel())


class LeViTAttention(nn.Module):
    """Multi-head self-attention with a learned per-head bias for each relative offset.

    Per head, queries and keys have ``key_dim`` channels and values ``attn_ratio * key_dim``;
    the concatenated values pass through Hardswish and a ``LinearBN`` projection back to ``dim``.

    Args:
        dim: token width.
        key_dim: channels of queries and keys per head.
        num_heads: number of heads.
        attn_ratio: value channels per head divided by ``key_dim``.
        resolution: side of the square token grid (the bias table is tied to it).
    """

    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: float = 2.0, resolution: int = 14) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = int(attn_ratio * key_dim)
        self.resolution = resolution
        self.scale = key_dim**-0.5
        inner = self.value_dim * num_heads
        self.qkv = LinearBN(dim, inner + 2 * key_dim * num_heads)
        self.proj = nn.Sequential(nn.Hardswish(), LinearBN(inner, dim, bn_weight_init=0.0))
        index, num_offsets = relative_offset_index(resolution, resolution)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, num_offsets))
        # derived from the geometry, so it is not saved; loaders compare checkpoint copies with it
        self.register_buffer("attention_bias_idxs", index, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over tokens ``(B, resolution**2, dim)``; returns the same shape."""
        b, n, _ = x.shape
        # LeViT lays the projection out head by head as [q | k | v]
        q, k, v = self.qkv(x).view(b, n, self.num_heads, -1).split([self.key_dim, self.key_dim, self.value_dim], 3)
        bias = self.attention_biases[:, self.attention_bias_idxs]
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=bias.to(q.dtype), scale=self.scale
        )
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class _TokenGridSubsample(nn.Module):
    """Keep every ``stride``-th token of a square ``resolution x resolution`` grid in both axes."""

    def __init__(self, stride: int, resolution: int) -> None:
        super().__init__()
        self.stride = stride
        self.resolution = resolution

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        grid = x.view(b, self.resolution, self.resolution, c)
        return grid[:, :: self.stride, :: self.stride].reshape(b, -1, c)


class LeViTAttentionSubsample(nn.Module):
    """Shrinking attention between LeViT stages: queries from a strided token subset.

    Keys and values come from all ``resolution**2`` tokens, queries from every ``stride``-th token
    of each axis, so the output grid side is ``(resolution - 1) // stride + 1`` and the width
    changes from ``in_dim`` to ``out_dim``. There is no residual connection.

    Args:
        in_dim: input token width.
        out_dim: output token width.
        key_dim: channels of queries and keys per head.
        num_heads: number of heads.
        attn_ratio: value channels per head divided by ``key_dim``.
        stride: query stride on the input grid.
        resolution: side of the input token grid.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        key_dim: int,
        num_heads: int,
        attn_ratio: float = 4.0,
        stride: int = 2,
        resolution: int = 14,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = int(attn_ratio * key_dim)
        self.resolution = resolution
        self.out_resolution = (resolution - 1) // stride + 1
        # stored rather than computed in forward: TorchScript types ``int ** int`` as float
        self.out_tokens = self.out_resolution * self.out_resolution
        self.scale = key_dim**-0.5
        inner = self.value_dim * num_heads
        self.kv = LinearBN(in_dim, inner + key_dim * num_heads)
        self.q = nn.Sequential(_TokenGridSubsample(stride, resolution), LinearBN(in_dim, key_dim * num_heads))
        self.proj = nn.Sequential(nn.Hardswish(), LinearBN(inner, out_dim))
        index, num_offsets = relative_offset_index(self.out_resolution, resolution, stride)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, num_offsets))
        self.register_buffer("attention_bias_idxs", index, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, resolution**2, in_dim)`` to ``(B, out_resolution**2, out_dim)``."""
        b, n, _ = x.shape
        k, v = self.kv(x).view(b, n, self.num_heads, -1).split([self.key_dim, self.value_dim], 3)
        q = self.q(x).view(b, self.out_tokens, self.num_heads, self.key_dim)
        bias = self.attention_biases[:, self.attention_bias_idxs]
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=bias.to(q.dtype), scale=self.scale
        )
        return self.proj(out.transpose(1, 2).reshape(b, self.out_tokens, -1))
