"""Tests of the LeViT attention blocks against explicit per-head loops written from the paper /
facebookresearch/LeViT ``levit.py`` (head-major ``[q | k | v]`` projection layout)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from monai_masksup.networks.blocks import LeViTAttention, LeViTAttentionSubsample, relative_offset_index


def _first_appearance_index(q_res: int, k_res: int, stride: int) -> tuple[torch.Tensor, int]:
    """LeViT's bias numbering written as a plain loop: offsets numbered as first met."""
    seen: dict[tuple[int, int], int] = {}
    idx = []
    for qy, qx in itertools.product(range(q_res), repeat=2):
        for ky, kx in itertools.product(range(k_res), repeat=2):
            off = (abs(stride * qy - ky), abs(stride * qx - kx))
            idx.append(seen.setdefault(off, len(seen)))
    return torch.tensor(idx).view(q_res**2, k_res**2), len(seen)


@pytest.mark.parametrize("q_res,k_res,stride", [(4, 4, 1), (7, 7, 1), (7, 14, 2), (4, 7, 2), (2, 5, 3)])
def test_relative_offset_index_numbers_offsets_by_first_appearance(q_res, k_res, stride):
    index, count = relative_offset_index(q_res, k_res, stride)
    expected, expected_count = _first_appearance_index(q_res, k_res, stride)
    assert count == expected_count
    assert torch.equal(index, expected)


def test_relative_offset_index_small_case_by_hand():
    # 2x2 grid, stride 1: offsets (0,0)=0, (0,1)=1, (1,0)=2, (1,1)=3 as met from query (0,0)
    index, count = relative_offset_index(2, 2, 1)
    assert count == 4
    assert index.tolist() == [[0, 1, 2, 3], [1, 0, 3, 2], [2, 3, 0, 1], [3, 2, 1, 0]]


def _randomise(module: torch.nn.Module) -> None:
    """Random weights and BN statistics (eval mode), so every parameter matters."""
    gen = torch.Generator().manual_seed(3)
    for name, tensor in itertools.chain(module.named_parameters(), module.named_buffers()):
        if name.endswith("running_var"):
            tensor.data.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
        elif tensor.is_floating_point():
            tensor.data.copy_(torch.randn(tensor.shape, generator=gen))
    module.eval()


def _bn_eval(x: torch.Tensor, bn: torch.nn.BatchNorm1d) -> torch.Tensor:
    return (x - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias


def _linear_bn(x: torch.Tensor, layer) -> torch.Tensor:
    return _bn_eval(x @ layer.c.weight.T, layer.bn)


def test_attention_matches_explicit_per_head_computation():
    dim, key_dim, heads, res = 6, 2, 3, 3
    block = LeViTAttention(dim, key_dim, heads, attn_ratio=2.0, resolution=res)
    _randomise(block)
    x = torch.randn(2, res * res, dim)
    with torch.no_grad():
        out = block(x)
        qkv = _linear_bn(x, block.qkv)  # (B, N, heads * (2 + 2 + 4))
        index, _ = _first_appearance_index(res, res, 1)
        per_head = []
        for h in range(heads):
            chunk = qkv[..., h * 8 : (h + 1) * 8]
            q, k, v = chunk[..., :2], chunk[..., 2:4], chunk[..., 4:]
            logits = q @ k.transpose(1, 2) / key_dim**0.5 + block.attention_biases[h][index]
            per_head.append(torch.softmax(logits, -1) @ v)
        expected = _linear_bn(F.hardswish(torch.cat(per_head, -1)), block.proj[1])
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_subsample_attention_matches_explicit_per_head_computation():
    in_dim, out_dim, key_dim, heads, res = 4, 5, 2, 2, 3
    block = LeViTAttentionSubsample(in_dim, out_dim, key_dim, heads, attn_ratio=4.0, stride=2, resolution=res)
    _randomise(block)
    x = torch.randn(2, res * res, in_dim)
    with torch.no_grad():
        out = block(x)
        kv = _linear_bn(x, block.kv)  # (B, 9, heads * (2 + 8))
        # queries at grid positions (0,0), (0,2), (2,0), (2,2) of the 3x3 grid
        q_all = _linear_bn(x[:, [0, 2, 6, 8]], block.q[1])
        index, _ = _first_appearance_index(2, res, 2)
        per_head = []
        for h in range(heads):
            k, v = kv[..., h * 10 : h * 10 + 2], kv[..., h * 10 + 2 : (h + 1) * 10]
            q = q_all[..., h * 2 : (h + 1) * 2]
            logits = q @ k.transpose(1, 2) / key_dim**0.5 + block.attention_biases[h][index]
            per_head.append(torch.softmax(logits, -1) @ v)
        expected = _linear_bn(F.hardswish(torch.cat(per_head, -1)), block.proj[1])
    assert out.shape == (2, 4, out_dim)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
