"""LeViTUNet compiles with ``torch.jit.script`` and exports through MONAI's bundle ``ckpt_export``."""

from __future__ import annotations

import json

import pytest
import torch
from monai.bundle import ckpt_export

from monai_masksup.networks import LeViTUNet, load_masksup_checkpoint
from tests.conftest import load_reference
from tests.networks.levit_official_reference import REF, official_state_dict

# torch 2.13 deprecates TorchScript in favour of torch.export; MONAI's ckpt_export still writes it
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.(save|load)` is deprecated:DeprecationWarning")


def _randomise_norms_and_biases(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every BN and attention bias a non-default value: LeViT zero-initialises the last BN
    scale of each residual branch, so with default weights the attention branches would add
    nothing and a scripting error inside them would go unseen."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif tensor.dim() == 1 or "attention_biases" in name:
                tensor.copy_(0.5 * torch.randn(tensor.shape, generator=gen) + (1.0 if name.endswith("weight") else 0.0))


def test_levit_unet_compiles_with_torch_jit_script_and_keeps_input_checks():
    scripted = torch.jit.script(LeViTUNet("128s").eval())
    # a ValueError raised in TorchScript reaches Python as torch.jit.Error with the same message
    with pytest.raises(Exception, match=r"ValueError: LeViTUNet: input spatial size \[256, 256\]"):
        scripted(torch.zeros(1, 3, 256, 256))
    with pytest.raises(Exception, match=r"ValueError: LeViTUNet: expected input of shape \(B, 3, 224, 224\)"):
        scripted(torch.zeros(1, 1, 224, 224))


@pytest.mark.slow
def test_scripted_model_gives_eager_output():
    torch.manual_seed(0)
    model = LeViTUNet("128s", in_channels=3, out_channels=2)
    _randomise_norms_and_biases(model)
    model.eval()
    scripted = torch.jit.script(model)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x)
        out = scripted(x)
    torch.testing.assert_close(out, expected, rtol=0.0, atol=1e-5)


@pytest.mark.slow
def test_ckpt_export_of_official_checkpoint_gives_official_output(tmp_path):
    ref = load_reference(REF)
    model = LeViTUNet("128s", in_channels=3, out_channels=1)
    load_masksup_checkpoint(model, official_state_dict(ref, "128s"))
    torch.save(model.state_dict(), tmp_path / "model.pt")
    network_def = {"_target_": "monai_masksup.networks.LeViTUNet", "variant": "128s", "in_channels": 3}
    (tmp_path / "inference.json").write_text(json.dumps({"network_def": network_def}))

    # what `python -m monai.bundle ckpt_export network_def --filepath ... --ckpt_file ...` runs
    ckpt_export(
        net_id="network_def",
        filepath=str(tmp_path / "model.ts"),
        ckpt_file=str(tmp_path / "model.pt"),
        config_file=str(tmp_path / "inference.json"),
        bundle_root=str(tmp_path),
    )

    exported = torch.jit.load(tmp_path / "model.ts", map_location="cpu").eval()
    x = torch.from_numpy(ref["input"])
    with torch.no_grad():
        out = exported(x)
        eager = model.eval()(x)
    torch.testing.assert_close(out, eager, rtol=0.0, atol=1e-5)
    torch.testing.assert_close(out, torch.from_numpy(ref["128s_output"]), rtol=0.0, atol=1e-4)
