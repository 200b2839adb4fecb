"""Tests of LeViTUNet: output shapes, parameter counts, input checks, gradient flow."""

from __future__ import annotations

import pytest
import torch

from monai_masksup.networks import LeViTUNet

# LeViT specifications as printed in facebookresearch/LeViT levit.py (C, D, N, X)
_SPECS = {
    "384": ((384, 512, 768), 32, (6, 9, 12), (4, 4, 4)),
    "192": ((192, 288, 384), 32, (3, 5, 6), (4, 4, 4)),
    "128s": ((128, 256, 384), 16, (4, 6, 8), (2, 3, 4)),
}
# printed by the official MaskSup models/LeViTUNet384.py for Build_LeViT_UNet_384(num_classes=1)
_OFFICIAL_384_PARAMS = 52_154_213

@pytest.fixture(scope="module")
def model_of():
    """Build each variant once per module (the 384 model alone has 52 M parameters); freed after."""
    cache: dict[str, LeViTUNet] = {}

    def build(variant: str) -> LeViTUNet:
        if variant not in cache:
            torch.manual_seed(0)
            cache[variant] = LeViTUNet(variant, in_channels=3, out_channels=1).eval()
        return cache[variant]

    yield build
    cache.clear()


def _params_from_architecture(spec, in_channels: int = 3, out_channels: int = 1) -> int:
    """Hand-count of the official LeViT-UNet parameters from its layer list.

    Conv2d_BN / Linear_BN: weight + BN scale and shift. Attention: qkv (4·D·h outputs), proj
    (2·D·h -> C), one bias per head and distinct offset (r² on an r×r grid). Subsample attention:
    kv (5·D·h outputs), q (D·h), proj (4·D·h -> C'), h = C/D heads, offsets |2i-j| span the input
    grid (r_in² per head); each is followed by an MLP. Decoder: two bias-free 3×3 conv + BN per
    block (n+ΣC -> 512, n/2+512 -> 256, n/4+256 -> 128), head 3×3 conv with bias on n/8+128.
    """
    dims, d, heads, depth = spec
    n = dims[0]

    def conv_bn(a, b, k=3):
        return a * b * k * k + 2 * b

    def lin_bn(a, b):
        return a * b + 2 * b

    def mlp(c):
        return lin_bn(c, 2 * c) + lin_bn(2 * c, c)

    total = conv_bn(in_channels, n // 8) + conv_bn(n // 8, n // 4) + conv_bn(n // 4, n // 2) + conv_bn(n // 2, n)
    res = (14, 7, 4)
    for s in range(3):
        if s > 0:
            c_in, h = dims[s - 1], dims[s - 1] // d
            total += lin_bn(c_in, 5 * d * h) + lin_bn(c_in, d * h) + lin_bn(4 * d * h, dims[s]) + h * res[s - 1] ** 2
            total += mlp(dims[s])
        for _ in range(depth[s]):
            total += lin_bn(dims[s], 4 * d * heads[s]) + lin_bn(2 * d * heads[s], dims[s]) + heads[s] * res[s] ** 2
            total += mlp(dims[s])
    for a, b in ((n + sum(dims), 512), (n // 2 + 512, 256), (n // 4 + 256, 128)):
        total += conv_bn(a, b) + conv_bn(b, b)
    return total + (n // 8 + 128) * out_channels * 9 + out_channels


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_hand_count_reproduces_official_384_number():
    assert _params_from_architecture(_SPECS["384"]) == _OFFICIAL_384_PARAMS


def test_384_parameter_count_matches_official_code(model_of):
    count = _count(model_of("384"))
    assert abs(count - _OFFICIAL_384_PARAMS) <= 0.005 * _OFFICIAL_384_PARAMS
    assert count == _OFFICIAL_384_PARAMS


@pytest.mark.parametrize("variant", ["192", "128s"])
def test_parameter_count_matches_hand_count_of_official_architecture(variant, model_of):
    assert _count(model_of(variant)) == _params_from_architecture(_SPECS[variant])


def test_parameter_count_follows_channel_arguments():
    model = LeViTUNet("128s", in_channels=1, out_channels=3)
    assert _count(model) == _params_from_architecture(_SPECS["128s"], in_channels=1, out_channels=3)


@pytest.mark.parametrize("variant", ["384", "192", "128s"])
def test_forward_returns_logits_at_input_size(variant, model_of):
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        y = model_of(variant)(x)
    assert y.shape == (1, 1, 224, 224)
    assert torch.isfinite(y).all()


def test_stage_token_grids_are_14_7_4(model_of):
    assert model_of("128s").stage_resolutions == (14, 7, 4)
    # 128s: 2/3/4 attention+MLP pairs, with a subsample attention + MLP opening stages 2 and 3
    assert model_of("128s").stage_ends == (4, 4 + 2 + 6, 4 + 2 + 6 + 2 + 8)


def test_input_of_256_pixels_raises_value_error(model_of):
    with pytest.raises(ValueError, match="224"):
        model_of("128s")(torch.zeros(1, 3, 256, 256))


def test_img_size_other_than_224_raises_at_construction():
    with pytest.raises(ValueError, match="img_size=256"):
        LeViTUNet("128s", img_size=256)


def test_wrong_channel_count_and_unknown_variant_raise(model_of):
    with pytest.raises(ValueError, match=r"\(B, 3, 224, 224\)"):
        model_of("128s")(torch.zeros(1, 1, 224, 224))
    with pytest.raises(ValueError, match="variant='256'"):
        LeViTUNet("256")


def test_gradient_reaches_first_stem_conv_and_attention_biases():
    torch.manual_seed(0)
    model = LeViTUNet("128s", out_channels=1).train()
    # LeViT zero-initialises the last BN scale of each residual branch (the branch starts as the
    # identity and its inner gradients vanish); open the last attention branch to see its biases
    model.blocks[-2].m.proj[1].bn.weight.data.fill_(1.0)
    for p in model.decoder.parameters():
        p.requires_grad_(False)  # saves CPU time; gradients still flow through the decoder's inputs
    model(torch.randn(1, 3, 224, 224)).square().mean().backward()
    first_conv = model.patch_embed[0].c.weight.grad
    assert first_conv is not None and first_conv.abs().sum() > 0
    assert model.blocks[-2].m.attention_biases.grad.abs().sum() > 0
    assert model.blocks[4].attention_biases.grad.abs().sum() > 0  # first subsample attention
