"""Tests of the LeViT weight loaders and downloader on synthesised checkpoints.

The checkpoints are built from key/shape tables written here from the official code
(facebookresearch/LeViT ``levit.py`` and hasibzunair/masksup-segmentation
``models/LeViTUNet128s.py``), not from the model's own ``state_dict``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from monai.apps.utils import HashCheckError

from monai_masksup.networks import (
    LEVIT_IMAGENET_URLS,
    LeViTUNet,
    download_levit_weights,
    load_levit_imagenet_weights,
    load_masksup_checkpoint,
)

# LeViT-128S (levit.py specification): C = 128_256_384, D = 16, N = 4_6_8, X = 2_3_4
_C, _D, _N, _X = (128, 256, 384), 16, (4, 6, 8), (2, 3, 4)
_RES = (14, 7, 4)


def _bias_index(q_res: int, k_res: int, stride: int) -> torch.Tensor:
    """LeViT ``attention_bias_idxs``: offsets numbered in order of first appearance."""
    seen: dict[tuple[int, int], int] = {}
    idx = [
        seen.setdefault((abs(stride * qy - ky), abs(stride * qx - kx)), len(seen))
        for qy, qx in itertools.product(range(q_res), repeat=2)
        for ky, kx in itertools.product(range(k_res), repeat=2)
    ]
    return torch.tensor(idx).view(q_res**2, k_res**2)


def _bn(prefix: str, n: int) -> dict:
    return {
        f"{prefix}.weight": (n,),
        f"{prefix}.bias": (n,),
        f"{prefix}.running_mean": (n,),
        f"{prefix}.running_var": (n,),
        f"{prefix}.num_batches_tracked": (),
    }


def _conv_bn(prefix: str, a: int, b: int) -> dict:  # Conv2d_BN: modules "c" and "bn"
    return {f"{prefix}.c.weight": (b, a, 3, 3), **_bn(f"{prefix}.bn", b)}


def _linear_bn(prefix: str, a: int, b: int) -> dict:  # Linear_BN: modules "c" and "bn"
    return {f"{prefix}.c.weight": (b, a), **_bn(f"{prefix}.bn", b)}


def _mlp(prefix: str, c: int) -> dict:  # Residual(Sequential(Linear_BN, act, Linear_BN))
    return {**_linear_bn(f"{prefix}.m.0", c, 2 * c), **_linear_bn(f"{prefix}.m.2", 2 * c, c)}


def _facebook_levit_128s_layout() -> dict:
    """Key -> shape (or index tensor) of a facebookresearch LeViT-128S ImageNet checkpoint."""
    n = _C[0]
    widths = (3, n // 8, n // 4, n // 2, n)
    layout: dict = {}
    for i in range(4):  # b16(): Conv2d_BN at patch_embed.0/2/4/6, Hardswish in between
        layout |= _conv_bn(f"patch_embed.{2 * i}", widths[i], widths[i + 1])
    b = 0
    for s in range(3):
        if s > 0:  # AttentionSubsample(key_dim=D, heads=C/D, attn_ratio=4, stride 2) + MLP
            c_in, h = _C[s - 1], _C[s - 1] // _D
            layout |= _linear_bn(f"blocks.{b}.kv", c_in, 4 * _D * h + _D * h)
            layout |= _linear_bn(f"blocks.{b}.q.1", c_in, _D * h)
            layout |= _linear_bn(f"blocks.{b}.proj.1", 4 * _D * h, _C[s])
            layout[f"blocks.{b}.attention_biases"] = (h, _RES[s - 1] ** 2)
            layout[f"blocks.{b}.attention_bias_idxs"] = _bias_index(_RES[s], _RES[s - 1], 2)
            layout |= _mlp(f"blocks.{b + 1}", _C[s])
            b += 2
        for _ in range(_X[s]):  # Residual(Attention(attn_ratio=2)) + Residual(MLP ratio 2)
            h = _N[s]
            layout |= _linear_bn(f"blocks.{b}.m.qkv", _C[s], 2 * _D * h + 2 * _D * h)
            layout |= _linear_bn(f"blocks.{b}.m.proj.1", 2 * _D * h, _C[s])
            layout[f"blocks.{b}.m.attention_biases"] = (h, _RES[s] ** 2)
            layout[f"blocks.{b}.m.attention_bias_idxs"] = _bias_index(_RES[s], _RES[s], 1)
            layout |= _mlp(f"blocks.{b + 1}", _C[s])
            b += 2
    for head in ("head", "head_dist"):  # BN_Linear classifiers
        layout |= {**_bn(f"{head}.bn", _C[-1]), f"{head}.l.weight": (1000, _C[-1]), f"{head}.l.bias": (1000,)}
    return layout


def _masksup_128s_layout(out_channels: int = 1) -> dict:
    """Key -> shape of ``LeViT_UNet_128s(num_classes=out_channels).state_dict()`` (official MaskSup)."""
    facebook = _facebook_levit_128s_layout()
    layout: dict = {}
    for key, value in facebook.items():
        if key.startswith("patch_embed."):
            stage = int(key.split(".")[1]) // 2 + 1
            layout[f"cnn_b{stage}.0." + key.split(".", 2)[2]] = value
        elif key.startswith("blocks."):
            idx, rest = int(key.split(".")[1]), key.split(".", 2)[2]
            # self.block_1 = blocks[0:4]; block_2 = blocks[4:12]; block_3 = blocks[12:]; a slice of an
            # nn.Sequential keeps the child names, so block_2 holds "4".."11", not "0".."7"
            for name, start, end in (("block_1", 0, 4), ("block_2", 4, 12), ("block_3", 12, 22)):
                if start <= idx < end:
                    layout[f"{name}.{idx}.{rest}"] = value
    n = _C[0]
    for k, (a, b) in enumerate(((n + sum(_C), 512), (n // 2 + 512, 256), (n // 4 + 256, 128)), start=1):
        for j, (cin, cout) in enumerate(((a, b), (b, b)), start=1):  # Conv2dReLU = (conv, bn, relu)
            layout[f"decoderBlock_{k}.conv{j}.0.weight"] = (cout, cin, 3, 3)
            layout |= _bn(f"decoderBlock_{k}.conv{j}.1", cout)
    layout["segmentation_head.0.weight"] = (out_channels, n // 8 + 128, 3, 3)
    layout["segmentation_head.0.bias"] = (out_channels,)
    return layout


def _synthesise(layout: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in layout.items():
        if isinstance(shape, torch.Tensor):
            state[key] = shape.clone()
        elif key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(shape, generator=gen)
    return state


@pytest.fixture(scope="module")
def imagenet_128s() -> dict[str, torch.Tensor]:
    return _synthesise(_facebook_levit_128s_layout())


def test_released_urls_match_levit_readme():
    # facebookresearch/LeViT README "model" links
    assert LEVIT_IMAGENET_URLS == {
        "128s": "https://dl.fbaipublicfiles.com/LeViT/LeViT-128S-96703c44.pth",
        "192": "https://dl.fbaipublicfiles.com/LeViT/LeViT-192-92712e41.pth",
        "384": "https://dl.fbaipublicfiles.com/LeViT/LeViT-384-9bdaf2e2.pth",
    }


def test_imagenet_checkpoint_fills_whole_encoder_including_first_stem_conv(tmp_path, imagenet_128s):
    path = tmp_path / "LeViT-128S.pth"
    # layout of a LeViT training checkpoint: the weights under "model" beside the run's arguments
    torch.save({"model": imagenet_128s, "epoch": 1000, "args": argparse.Namespace(model="LeViT_128S")}, path)
    model = LeViTUNet("128s")
    decoder_before = model.decoder[0].conv1.conv.weight.clone()

    report = load_levit_imagenet_weights(model, path)

    heads = {k for k in imagenet_128s if k.startswith("head")}
    idxs = {k for k in imagenet_128s if k.endswith("attention_bias_idxs")}
    assert report.missing == []
    assert set(report.unexpected) == heads
    assert set(report.checked_buffers) == idxs
    assert set(report.loaded) == set(imagenet_128s) - heads - idxs
    assert torch.equal(model.patch_embed[0].c.weight, imagenet_128s["patch_embed.0.c.weight"])
    assert torch.equal(model.patch_embed[6].bn.running_var, imagenet_128s["patch_embed.6.bn.running_var"])
    assert torch.equal(model.blocks[12].kv.c.weight, imagenet_128s["blocks.12.kv.c.weight"])
    assert torch.equal(model.blocks[20].m.attention_biases, imagenet_128s["blocks.20.m.attention_biases"])
    assert torch.equal(model.decoder[0].conv1.conv.weight, decoder_before)


def test_imagenet_loader_needs_three_input_channels_for_first_conv(imagenet_128s):
    with pytest.raises(ValueError, match=r"patch_embed\.0\.c\.weight.*in_channels=3"):
        load_levit_imagenet_weights(LeViTUNet("128s", in_channels=1), imagenet_128s)


def test_imagenet_loader_names_key_with_wrong_shape(imagenet_128s):
    state = dict(imagenet_128s)
    state["blocks.6.m.qkv.c.weight"] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match=r"blocks\.6\.m\.qkv\.c\.weight"):
        load_levit_imagenet_weights(LeViTUNet("128s"), state)


def test_imagenet_loader_rejects_bias_index_of_other_geometry(imagenet_128s):
    state = dict(imagenet_128s)
    state["blocks.0.m.attention_bias_idxs"] = state["blocks.0.m.attention_bias_idxs"].flip(0)
    with pytest.raises(ValueError, match=r"blocks\.0\.m\.attention_bias_idxs"):
        load_levit_imagenet_weights(LeViTUNet("128s"), state)


def test_imagenet_loader_reports_or_raises_on_missing_encoder_key(imagenet_128s):
    state = {k: v for k, v in imagenet_128s.items() if k != "blocks.3.m.0.c.weight"}
    with pytest.raises(KeyError, match=r"blocks\.3\.m\.0\.c\.weight"):
        load_levit_imagenet_weights(LeViTUNet("128s"), state)
    report = load_levit_imagenet_weights(LeViTUNet("128s"), state, strict_encoder=False)
    assert report.missing == ["blocks.3.m.0.c.weight"]


def test_imagenet_loader_rejects_encoder_keys_of_a_deeper_variant(imagenet_128s):
    # LeViT-128 has 4 attention pairs in stage 3: blocks beyond index 21 do not exist in 128S
    state = dict(imagenet_128s)
    state["blocks.22.m.0.c.weight"] = torch.zeros(768, 384)
    with pytest.raises(KeyError, match=r"blocks\.22\.m\.0\.c\.weight"):
        load_levit_imagenet_weights(LeViTUNet("128s"), state)
    report = load_levit_imagenet_weights(LeViTUNet("128s"), state, strict_encoder=False)
    assert "blocks.22.m.0.c.weight" in report.unexpected


def test_loaders_name_missing_file(tmp_path):
    missing = tmp_path / "nowhere" / "LeViT-384.pth"
    model = LeViTUNet("128s")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_levit_imagenet_weights(model, missing)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_masksup_checkpoint(model, str(missing))


def test_masksup_checkpoint_maps_every_official_key(tmp_path):
    state = _synthesise(_masksup_128s_layout(out_channels=2), seed=1)
    torch.save(state, tmp_path / "glas.pth")
    model = LeViTUNet("128s", out_channels=2)

    report = load_masksup_checkpoint(model, tmp_path / "glas.pth")

    assert report.missing == [] and report.unexpected == []
    assert len(report.loaded) + len(report.checked_buffers) == len(state)
    assert torch.equal(model.patch_embed[0].c.weight, state["cnn_b1.0.c.weight"])
    assert torch.equal(model.patch_embed[4].bn.bias, state["cnn_b3.0.bn.bias"])
    assert torch.equal(model.blocks[4].q[1].c.weight, state["block_2.4.q.1.c.weight"])
    assert torch.equal(model.blocks[21].m[2].bn.weight, state["block_3.21.m.2.bn.weight"])
    assert torch.equal(model.decoder[0].conv1.conv.weight, state["decoderBlock_1.conv1.0.weight"])
    assert torch.equal(model.decoder[2].conv2.adn.N.running_mean, state["decoderBlock_3.conv2.1.running_mean"])
    assert torch.equal(model.head.bias, state["segmentation_head.0.bias"])


def test_masksup_checkpoint_with_unsplit_blocks_copy_loads_and_conflicts_raise():
    # LeViTUNet192.py keeps ``self.blocks`` beside block_1..3, so its state dicts hold both names
    state = _synthesise(_masksup_128s_layout(), seed=2)
    state["blocks.5.m.0.c.weight"] = state["block_2.5.m.0.c.weight"].clone()
    report = load_masksup_checkpoint(LeViTUNet("128s"), state)
    assert report.unexpected == []
    state["blocks.5.m.0.c.weight"] = state["blocks.5.m.0.c.weight"] + 1
    with pytest.raises(ValueError, match=r"blocks\.5\.m\.0\.c\.weight"):
        load_masksup_checkpoint(LeViTUNet("128s"), state)


@pytest.fixture()
def loopback_server(tmp_path, monkeypatch):
    """Serve ``tmp_path / "srv"`` on 127.0.0.1; yields (folder, base url, list of requested paths)."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    folder = tmp_path / "srv"
    folder.mkdir()
    requests: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


def _tiny_checkpoint(folder) -> tuple[bytes, str]:
    path = folder / "tmp.pth"
    torch.save({"model": {"patch_embed.0.c.weight": torch.arange(6.0).view(1, 2, 3, 1)}}, path)
    data = path.read_bytes()
    path.unlink()
    return data, hashlib.sha256(data).hexdigest()


def test_download_fetches_file_and_checks_hash_prefix_in_name(tmp_path, loopback_server):
    folder, base, requests = loopback_server
    data, sha = _tiny_checkpoint(folder)
    name = f"LeViT-128S-{sha[:8]}.pth"
    (folder / name).write_bytes(data)
    dst = tmp_path / "weights"

    path = download_levit_weights("128s", dst, url=f"{base}/{name}")

    assert path == dst / name and path.read_bytes() == data
    assert torch.load(path, weights_only=True)["model"]["patch_embed.0.c.weight"].sum() == 15.0
    served = len(requests)
    assert download_levit_weights("128s", dst, url=f"{base}/{name}") == path
    assert len(requests) == served  # existing verified file is not fetched again


def test_download_rejects_file_whose_hash_prefix_differs(tmp_path, loopback_server):
    folder, base, _ = loopback_server
    data, sha = _tiny_checkpoint(folder)
    wrong = "0" * 8 if not sha.startswith("0" * 8) else "f" * 8
    (folder / f"LeViT-128S-{wrong}.pth").write_bytes(data)
    dst = tmp_path / "weights"
    with pytest.raises(HashCheckError, match="sha256"):
        download_levit_weights("128s", dst, url=f"{base}/LeViT-128S-{wrong}.pth")
    assert not (dst / f"LeViT-128S-{wrong}.pth").exists()


def test_download_checks_full_hash_with_monai(tmp_path, loopback_server):
    folder, base, _ = loopback_server
    data, sha = _tiny_checkpoint(folder)
    (folder / "plain.pth").write_bytes(data)
    assert download_levit_weights("384", tmp_path / "ok", url=f"{base}/plain.pth", hash_val=sha).read_bytes() == data
    with pytest.raises(HashCheckError):
        download_levit_weights("384", tmp_path / "bad", url=f"{base}/plain.pth", hash_val="0" * 64)


def test_download_rejects_unknown_variant(tmp_path):
    with pytest.raises(ValueError, match="variant='256'"):
        download_levit_weights("256", tmp_path)
