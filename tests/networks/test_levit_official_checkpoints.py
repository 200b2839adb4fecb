"""Official MaskSup LeViT-UNet state dicts load into LeViTUNet and give the official outputs.

The state dicts are rebuilt from ``../shared/reference/levit_unet_official.npz``: the official key
layout of ``LeViT_UNet_{128s,192,384}(num_classes=1)`` (hasibzunair/masksup-segmentation @ 2d23b4c)
filled with the README's closed-form rule; ``v_output`` is the official model's eval-mode output
for that state dict.
"""

from __future__ import annotations

import pytest
import torch

from monai_masksup.networks import LeViTUNet, load_masksup_checkpoint
from tests.conftest import load_reference
from tests.networks.levit_official_reference import REF, official_state_dict

# building, filling and running the 20 M / 52 M parameter models takes several seconds each on the
# 2-core CI machine, so the fast suite checks 128s and the slow set adds 192 and 384
VARIANTS = (
    "128s",
    pytest.param("192", marks=pytest.mark.slow),
    pytest.param("384", marks=pytest.mark.slow),
)


@pytest.fixture(scope="module")
def ref() -> dict:
    return load_reference(REF)


@pytest.fixture(scope="module")
def loaded(ref):
    """``loaded(variant)`` -> (official state dict, model filled from it, report); built once per module."""
    cache: dict[str, tuple] = {}

    def load(variant: str) -> tuple:
        if variant not in cache:
            state = official_state_dict(ref, variant)
            model = LeViTUNet(variant, in_channels=3, out_channels=1)
            report = load_masksup_checkpoint(model, state)
            cache[variant] = (state, model.eval(), report)
        return cache[variant]

    yield load
    cache.clear()


@pytest.mark.parametrize("variant", VARIANTS)
def test_official_checkpoint_gives_official_output(ref, loaded, variant):
    _, model, _ = loaded(variant)
    with torch.no_grad():
        out = model(torch.from_numpy(ref["input"]))
    expected = torch.from_numpy(ref[f"{variant}_output"])
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=0.0, atol=1e-4)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_official_key_is_loaded_checked_or_an_equal_alias(ref, loaded, variant):
    state, model, report = loaded(variant)
    keys = ref[f"{variant}_keys"].tolist()
    alias_of = ref[f"{variant}_alias_of"]

    index_tables = {k for k in keys if k.endswith("attention_bias_idxs")}
    aliases = {keys[j] for j in range(len(keys)) if alias_of[j] != j} - index_tables
    assert list(state) == keys
    assert report.missing == [] and report.unexpected == []
    assert set(report.checked_buffers) == index_tables
    assert set(report.duplicates) == aliases  # only the 192 model has aliases
    assert len(report.loaded) + len(report.duplicates) + len(report.checked_buffers) == len(keys)
    assert sorted(report.loaded) == sorted(model.state_dict())  # every model entry filled once


@pytest.mark.parametrize("variant", VARIANTS)
def test_parameter_count_equals_official_model(ref, loaded, variant):
    _, model, _ = loaded(variant)
    assert sum(p.numel() for p in model.parameters()) == int(ref[f"{variant}_params"])


@pytest.mark.slow
def test_official_192_alias_with_another_value_is_an_error_naming_both_keys(ref):
    state = official_state_dict(ref, "192")
    state["block_2.12.m.attention_biases"] = state["block_2.12.m.attention_biases"] + 1.0
    with pytest.raises(ValueError, match=r"blocks\.12\.m\.attention_biases.*block_2\.12\.m\.attention_biases"):
        load_masksup_checkpoint(LeViTUNet("192"), state)


def test_stage_indices_counted_from_zero_are_reported_not_misplaced(ref):
    # a checkpoint whose block_2 children were renumbered from 0 would put stage-2 weights on
    # stage-1 blocks of the same shape; the loader names the keys instead
    state = {}
    for key, value in official_state_dict(ref, "128s").items():
        if key.startswith("block_2."):  # 128s: block_2 = blocks[4:12]
            stage_key = key.split(".", 2)
            key = f"block_2.{int(stage_key[1]) - 4}.{stage_key[2]}"
        state[key] = value
    with pytest.raises(KeyError, match=r"block_2\.0\.attention_biases"):
        load_masksup_checkpoint(LeViTUNet("128s"), state)
    report = load_masksup_checkpoint(LeViTUNet("128s"), state, strict=False)
    assert {"block_2.0.kv.c.weight", "block_2.1.m.0.c.weight"} <= set(report.unexpected)
    assert "blocks.4.kv.c.weight" in report.missing
