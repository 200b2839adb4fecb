"""Pretrained weights for :class:`~monai_masksup.networks.nets.LeViTUNet`.

- :func:`download_levit_weights` fetches the ImageNet LeViT checkpoints released with
  Graham et al., "LeViT: a Vision Transformer in ConvNet's Clothing for Faster Inference",
  ICCV 2021 (facebookresearch/LeViT), through MONAI's downloader.
- :func:`load_levit_imagenet_weights` loads such a checkpoint into the LeViT-UNet encoder.
- :func:`load_masksup_checkpoint` loads a ``state_dict`` saved by the official MaskSup code
  (hasibzunair/masksup-segmentation, ``models/LeViTUNet*.py``), mapping its module names.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import torch
from monai.apps import download_url
from monai.apps.utils import HashCheckError
from torch import nn

from monai_masksup.networks.nets.levit_unet import LEVIT_SPECS, LeViTUNet

__all__ = [
    "LEVIT_IMAGENET_URLS",
    "LeViTWeightsReport",
    "download_levit_weights",
    "load_levit_imagenet_weights",
    "load_masksup_checkpoint",
    "masksup_key_to_levit_unet",
]

# URLs of the facebookresearch/LeViT README / levit.py ``specification``
LEVIT_IMAGENET_URLS: dict[str, str] = {
    "128s": "https://dl.fbaipublicfiles.com/LeViT/LeViT-128S-96703c44.pth",
    "192": "https://dl.fbaipublicfiles.com/LeViT/LeViT-192-92712e41.pth",
    "384": "https://dl.fbaipublicfiles.com/LeViT/LeViT-384-9bdaf2e2.pth",
}

_BIAS_INDEX_SUFFIX = "attention_bias_idxs"
_HASH_IN_NAME = re.compile(r"-([0-9a-fA-F]{8,64})\.[^.]+$")


@dataclass
class LeViTWeightsReport:
    """What a loader did, by key.

    Attributes:
        loaded: model keys that received a checkpoint value.
        missing: model keys (within the part the loader fills) that the checkpoint lacks.
        unexpected: checkpoint keys with no place in the model (e.g. the ImageNet classifier).
        checked_buffers: checkpoint ``attention_bias_idxs`` keys that were compared with the
            model's index tables (they are derived from the geometry and not stored by the model).
        duplicates: checkpoint keys that map to a model key already filled by an earlier checkpoint
            key holding an equal value (the official MaskSup 192 model saves every encoder block
            as ``blocks.{i}`` and again as ``block_{s}.{i}``). A duplicate with a different value
            is an error, never a silent choice.

    Every checkpoint key is counted once: the loaded model keys each stand for the first
    checkpoint key that filled them, so ``len(loaded) + len(duplicates) + len(unexpected) +
    len(checked_buffers)`` is the number of checkpoint entries.
    """

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    checked_buffers: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"LeViTWeightsReport(loaded={len(self.loaded)}, missing={len(self.missing)}, "
            f"unexpected={len(self.unexpected)}, checked_buffers={len(self.checked_buffers)}, "
            f"duplicates={len(self.duplicates)})"
        )


def _read_state_dict(checkpoint: str | os.PathLike | Mapping, what: str) -> dict[str, torch.Tensor]:
    """Read a checkpoint file or dict and unwrap ``{"model": ...}`` / ``{"state_dict": ...}``."""
    if isinstance(checkpoint, (str, os.PathLike)):
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"{what}: checkpoint file {str(path)!r} does not exist.")
        # training checkpoints of the DeiT/LeViT code also pickle the argparse.Namespace of the run
        with torch.serialization.safe_globals([argparse.Namespace]):
            try:
                checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError as err:
                raise ValueError(
                    f"{what}: {str(path)!r} holds objects other than tensors and plain containers and is not "
                    f"loaded with weights_only=True; load it yourself and pass the dict instead ({err})."
                ) from err
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f"{what}: expected a checkpoint path or a dict, got {type(checkpoint).__name__}.")
    for wrapper in ("model", "state_dict"):
        if isinstance(checkpoint.get(wrapper), Mapping):
            checkpoint = checkpoint[wrapper]
            break
    state: dict[str, torch.Tensor] = {}
    for key, value in checkpoint.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{what}: checkpoint entry {key!r} is a {type(value).__name__}, not a tensor.")
        # checkpoints saved from nn.DataParallel / DDP carry a "module." prefix
        state[key[len("module.") :] if key.startswith("module.") else key] = value
    return state


def _shorten(keys: list[str], limit: int = 5) -> str:
    return ", ".join(keys[:limit]) + (" ..." if len(keys) > limit else "")


def _load_mapped(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    key_map: Callable[[str], str | None],
    scope: Callable[[str], bool],
    strict: bool,
    what: str,
    ignorable: Callable[[str], bool] = lambda key: False,
) -> LeViTWeightsReport:
    """Rename checkpoint keys with ``key_map``, check them against ``model`` and copy them in.

    ``scope`` selects the model keys the checkpoint must provide; ``ignorable`` the checkpoint
    keys that may go unused even when ``strict``.
    """
    report = LeViTWeightsReport()
    model_state = model.state_dict()
    targets: dict[str, torch.Tensor] = {}
    sources: dict[str, str] = {}
    for ckpt_key, value in state.items():
        key = key_map(ckpt_key)
        if key is None:
            report.unexpected.append(ckpt_key)
            continue
        if key.endswith(_BIAS_INDEX_SUFFIX):
            try:
                own = model.get_buffer(key)
            except AttributeError:
                report.unexpected.append(ckpt_key)
                continue
            if tuple(value.shape) != tuple(own.shape) or not torch.equal(value.to(own), own):
                raise ValueError(
                    f"{what}: {ckpt_key!r} differs from the model's attention bias index table {key!r}; "
                    "the checkpoint was made for another token-grid geometry."
                )
            report.checked_buffers.append(ckpt_key)
            continue
        if key not in model_state:
            report.unexpected.append(ckpt_key)
            continue
        if tuple(value.shape) != tuple(model_state[key].shape):
            hint = ""
            if key == "patch_embed.0.c.weight":
                hint = (
                    " The first stem convolution of the ImageNet weights takes 3 input channels: build the model "
                    "with in_channels=3, or drop this key and pass strict_encoder=False."
                )
            raise ValueError(
                f"{what}: shape mismatch for checkpoint key {ckpt_key!r} -> model key {key!r}: checkpoint "
                f"{tuple(value.shape)}, model {tuple(model_state[key].shape)}.{hint}"
            )
        if key in targets:
            if not torch.equal(targets[key], value):
                raise ValueError(
                    f"{what}: checkpoint keys {sources[key]!r} and {ckpt_key!r} both map to {key!r} "
                    "but hold different values."
                )
            report.duplicates.append(ckpt_key)
            continue
        targets[key] = value
        sources[key] = ckpt_key

    report.missing = [k for k in model_state if scope(k) and k not in targets]
    surplus = [k for k in report.unexpected if not ignorable(k)]
    if strict and (report.missing or surplus):
        # both halves in one message: keys that went astray usually explain the missing ones
        problems = []
        if report.missing:
            problems.append(f"the checkpoint lacks {len(report.missing)} model key(s): {_shorten(report.missing)}")
        if surplus:
            problems.append(
                f"{len(surplus)} checkpoint key(s) have no place in the {type(model).__name__} "
                f"(another variant?): {_shorten(surplus)}"
            )
        raise KeyError(f"{what}: " + "; ".join(problems))
    model.load_state_dict(targets, strict=False)
    report.loaded = list(targets)
    return report


def _require_levit_unet(model: nn.Module, what: str) -> LeViTUNet:
    if not isinstance(model, LeViTUNet):
        raise TypeError(f"{what}: model must be a LeViTUNet, got {type(model).__name__}.")
    return model


def load_levit_imagenet_weights(
    model: LeViTUNet, checkpoint: str | os.PathLike | Mapping, strict_encoder: bool = True
) -> LeViTWeightsReport:
    """Load a facebookresearch/LeViT ImageNet checkpoint into the encoder of ``model``.

    The checkpoint keys ``patch_embed.*`` (stem) and ``blocks.*`` (attention stages) land on the
    modules of the same names; the classifier (``head.*``, ``head_dist.*``) is reported as
    unexpected and the decoder keeps its initialisation. Every encoder layer is loaded, the first
    stem convolution included. The official MaskSup code differs here: it never maps
    ``patch_embed.0``, so its first stem convolution stays random.

    Args:
        model: the network to fill (its variant must match the checkpoint).
        checkpoint: path of a released ``.pth`` file (a dict with a top-level ``"model"`` key) or
            an already loaded dict / state dict.
        strict_encoder: raise when an encoder key of the model is absent from the checkpoint or a
            checkpoint key other than the classifier has no place in the model; otherwise only
            list them in ``report.missing`` / ``report.unexpected``.

    Returns:
        a :class:`LeViTWeightsReport`.

    Raises:
        FileNotFoundError: when the checkpoint file does not exist (names the path).
        TypeError: when ``model`` is not a LeViTUNet or a checkpoint entry is not a tensor.
        ValueError: when a tensor shape differs from the model's (names the key), e.g. another
            variant, or ``in_channels != 3`` for the first stem convolution.
        KeyError: with ``strict_encoder=True`` when encoder keys are missing or unplaceable
            (names them).
    """
    what = "load_levit_imagenet_weights"
    _require_levit_unet(model, what)
    state = _read_state_dict(checkpoint, what)

    def in_encoder(key: str) -> bool:
        return key.startswith(("patch_embed.", "blocks."))

    def is_classifier(key: str) -> bool:
        return key.startswith(("head.", "head_dist."))

    return _load_mapped(
        model, state, lambda k: k if in_encoder(k) else None, in_encoder, strict_encoder, what, is_classifier
    )


def masksup_key_to_levit_unet(key: str, stage_bounds: tuple[int, ...]) -> str | None:
    """Name in :class:`LeViTUNet` of a key of the official MaskSup ``LeViT_UNet_*`` modules.

    ``cnn_b{1..4}.0`` -> ``patch_embed.{0,2,4,6}``; ``block_{s}.{i}`` -> ``blocks.{i}``;
    ``decoderBlock_{k}.conv{j}.{0,1}`` -> ``decoder.{k-1}.conv{j}.{conv,adn.N}``;
    ``segmentation_head.0`` -> ``head``. The 192 model also keeps the unsplit ``blocks.{i}``,
    which maps to itself.

    The official code makes ``block_s`` by slicing its ``nn.Sequential`` of blocks
    (``self.block_2 = self.blocks[8:18]``), and a slice keeps the original child names, so
    ``block_{s}.{i}`` is ``blocks.{i}``: ``i`` counts from the first block of the whole encoder,
    not of the stage. An index outside stage ``s`` has no counterpart.

    Args:
        key: a key of an official MaskSup state dict.
        stage_bounds: index in ``blocks`` where each stage starts, followed by the end of the last
            one (``(0, *model.stage_ends)``).

    Returns:
        the model key, or ``None`` when the key has no counterpart.
    """
    if m := re.fullmatch(r"cnn_b([1-4])\.0\.(.+)", key):
        return f"patch_embed.{2 * (int(m.group(1)) - 1)}.{m.group(2)}"
    if m := re.fullmatch(r"block_([1-9])\.(\d+)\.(.+)", key):
        stage, index = int(m.group(1)), int(m.group(2))
        if stage >= len(stage_bounds) or not stage_bounds[stage - 1] <= index < stage_bounds[stage]:
            return None
        return f"blocks.{index}.{m.group(3)}"
    if re.fullmatch(r"blocks\.\d+\..+", key):
        return key
    if m := re.fullmatch(r"decoderBlock_([1-3])\.conv([12])\.([01])\.(.+)", key):
        part = "conv" if m.group(3) == "0" else "adn.N"
        return f"decoder.{int(m.group(1)) - 1}.conv{m.group(2)}.{part}.{m.group(4)}"
    if m := re.fullmatch(r"segmentation_head\.0\.(weight|bias)", key):
        return f"head.{m.group(1)}"
    return None


def load_masksup_checkpoint(
    model: LeViTUNet, checkpoint: str | os.PathLike | Mapping, strict: bool = True
) -> LeViTWeightsReport:
    """Load a ``state_dict`` saved by the official MaskSup LeViT-UNet code into ``model``.

    The official training script saves ``model.state_dict()`` of ``LeViT_UNet_{128s,192,384}``;
    the keys are renamed with :func:`masksup_key_to_levit_unet` and every model key is filled.
    The official 192 model saves each encoder block twice (``blocks.*`` and ``block_*.*``, one
    storage): the second copy is checked to be equal and listed in ``report.duplicates``.
    The architecture is the official one, so the loaded model gives the official outputs.

    Args:
        model: a :class:`LeViTUNet` of the same variant and channel counts.
        checkpoint: path of the saved ``.pth`` file or the loaded dict.
        strict: raise when a model key is absent from the checkpoint or a checkpoint key has no
            place in the model.

    Returns:
        a :class:`LeViTWeightsReport`.

    Raises:
        FileNotFoundError: when the checkpoint file does not exist (names the path).
        TypeError: when ``model`` is not a LeViTUNet or a checkpoint entry is not a tensor.
        ValueError: on a shape mismatch (names the key), conflicting duplicate entries (names both)
            or an ``attention_bias_idxs`` table of another geometry.
        KeyError: with ``strict=True`` when keys are missing or unplaceable (names them).
    """
    what = "load_masksup_checkpoint"
    model = _require_levit_unet(model, what)
    state = _read_state_dict(checkpoint, what)
    bounds = (0, *model.stage_ends)
    return _load_mapped(model, state, lambda k: masksup_key_to_levit_unet(k, bounds), lambda k: True, strict, what)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_levit_weights(
    variant: str,
    dst_dir: str | os.PathLike,
    url: str | None = None,
    hash_val: str | None = None,
    hash_type: str = "sha256",
    progress: bool = False,
) -> Path:
    """Download an ImageNet LeViT checkpoint with :func:`monai.apps.download_url`.

    The file keeps the URL's name inside ``dst_dir``; an existing file is checked, not
    downloaded again. With ``hash_val`` MONAI checks the full ``hash_type`` digest. Without
    it, a name of the form ``name-<hex>.pth`` (the torch.hub convention of the released files,
    e.g. ``LeViT-384-9bdaf2e2.pth``) is checked as a SHA-256 prefix; a freshly downloaded file
    that fails is deleted. (The prefix convention could not be checked against the real files
    offline; pass ``hash_val`` or a URL without a hash suffix to bypass it.)

    Args:
        variant: ``"384"``, ``"192"`` or ``"128s"``; picks the default URL.
        dst_dir: folder to save into (created when missing).
        url: another source of the same file (mirror, local server).
        hash_val: expected full digest of the file.
        hash_type: digest type of ``hash_val`` (``"md5"``, ``"sha1"``, ``"sha256"``, ``"sha512"``).
        progress: show a progress bar.

    Returns:
        the path of the checkpoint file.

    Raises:
        ValueError: on an unknown ``variant``.
        monai.apps.utils.HashCheckError: when the digest or the name's SHA-256 prefix does not match.
        RuntimeError: when the download fails (from MONAI).
    """
    variant = str(variant).lower()
    if variant not in LEVIT_SPECS:
        raise ValueError(f"download_levit_weights: unknown variant={variant!r}; choose one of {sorted(LEVIT_SPECS)}.")
    url = url or LEVIT_IMAGENET_URLS[variant]
    name = Path(urlparse(url).path).name
    if not name:
        raise ValueError(f"download_levit_weights: cannot take a file name from url={url!r}.")
    filepath = Path(dst_dir) / name
    existed = filepath.exists()
    prefix = _HASH_IN_NAME.search(name)
    with warnings.catch_warnings():
        if hash_val is None and prefix is not None:
            # the SHA-256 prefix in the name is checked below, so MONAI's "not verified" note is moot
            warnings.filterwarnings("ignore", message="No hash value provided")
        download_url(url, filepath, hash_val=hash_val, hash_type=hash_type, progress=progress)
    if not filepath.is_file():
        raise RuntimeError(f"download_levit_weights: download of {url!r} did not produce {str(filepath)!r}.")
    if hash_val is None and prefix is not None:
        expected = prefix.group(1).lower()
        actual = _sha256(filepath)
        if not actual.startswith(expected):
            if not existed:
                filepath.unlink()
            raise HashCheckError(
                f"download_levit_weights: sha256 of {str(filepath)!r} is {actual[:len(expected)]}..., "
                f"but its name promises {expected}; the file may be corrupted."
            )
    return filepath
