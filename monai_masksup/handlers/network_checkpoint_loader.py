"""MONAI's ``CheckpointLoader`` that explains, in one message, a checkpoint that does not fit the configured network."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from monai.handlers import CheckpointLoader
from monai.utils import IgniteInfo, min_version, optional_import

if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["NetworkCheckpointLoader", "CheckpointMismatchError", "state_dict_mismatch"]


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's tensors do not fit the network it is loaded into."""


def state_dict_mismatch(network_state: dict[str, Any], saved_state: dict[str, Any]) -> tuple[list, list, list]:
    """
    Compare a network's ``state_dict`` with a saved one.

    Returns:
        ``(missing, unexpected, reshaped)``: network keys absent from ``saved_state``, saved keys the network
        lacks, and ``(key, saved shape, network shape)`` for common keys whose shapes differ; in the order of
        the network's (``unexpected``: the saved) ``state_dict``.
    """
    missing = [key for key in network_state if key not in saved_state]
    unexpected = [key for key in saved_state if key not in network_state]
    reshaped = [
        (key, tuple(saved_state[key].shape), tuple(value.shape))
        for key, value in network_state.items()
        if key in saved_state
        and hasattr(saved_state[key], "shape")
        and tuple(saved_state[key].shape) != tuple(value.shape)
    ]
    return missing, unexpected, reshaped


class NetworkCheckpointLoader(CheckpointLoader):
    """
    ``monai.handlers.CheckpointLoader`` for evaluation and inference bundles: it loads exactly as MONAI's, and when
    the checkpoint does not fit the configured network it raises one short :class:`CheckpointMismatchError` that
    names the file, the network, how many tensors differ (with an example), the likely cause and the fix, instead
    of PyTorch's list of every missing and unexpected key.

    The usual cause is a model trained with a config overlay that changes ``network_def`` (the bundles'
    ``configs/demo.json`` trains a small ``BasicUNet``) and evaluated without it. The file is checked when the
    loader is attached (while a bundle builds its evaluator), and again if loading fails when the engine starts.

    Args:
        args: as ``monai.handlers.CheckpointLoader`` (``load_path``, ``load_dict``, ``name``, ``map_location``,
            ``strict``, ``strict_shape``).
        hint: the sentence naming the likely cause and the fix; the default speaks of ``network_def`` and
            ``configs/demo.json``.
        kwargs: as ``monai.handlers.CheckpointLoader``.
    """

    DEFAULT_HINT = (
        "It was probably trained with a different `network_def`, e.g. with configs/demo.json (a small BasicUNet): "
        "give the same config files as for training, e.g. add configs/demo.json to --config_file "
        "(\"['configs/train.json','configs/demo.json','configs/evaluate.json']\"), or point --ckpt_dir at a model "
        "trained with this network."
    )

    def __init__(self, *args: Any, hint: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hint = self.DEFAULT_HINT if hint is None else hint

    def attach(self, engine: Engine) -> None:
        """
        Check that the checkpoint fits before registering the loader: the error then stops the config while the
        engine is built, once, instead of being logged again by every exception handler of the running engine.
        The file is memory-mapped for the check, so only the tensors' shapes are read.
        """
        # a non-strict load accepts what does not fit, by the user's choice
        message = self._mismatch_message(mmap=True) if self.strict and self.strict_shape else None
        if message is not None:
            raise CheckpointMismatchError(message)
        super().attach(engine)

    def __call__(self, engine: Engine) -> None:
        """Load the checkpoint as MONAI does; a network it does not fit raises :class:`CheckpointMismatchError`."""
        try:
            super().__call__(engine)
        except RuntimeError:
            message = self._mismatch_message()
            if message is None:
                raise
            # `from None`: PyTorch's message lists every key, which is what this handler replaces
            raise CheckpointMismatchError(message) from None

    def _mismatch_message(self, mmap: bool = False) -> str | None:
        try:
            checkpoint = torch.load(self.load_path, map_location="cpu", weights_only=True, mmap=mmap)
        except Exception:
            if mmap:
                return None  # an older file format, or no file yet: MONAI's loader reports it when it runs
            raise
        first = next(iter(self.load_dict))
        if len(self.load_dict) == 1 and first not in checkpoint:
            checkpoint = {first: checkpoint}  # as in CheckpointLoader: a lone network saved as its bare state_dict
        for key, obj in self.load_dict.items():
            if not isinstance(obj, torch.nn.Module) or key not in checkpoint:
                continue
            saved = checkpoint[key]
            wrappers = (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)
            network = obj.module if isinstance(obj, wrappers) else obj
            missing, unexpected, reshaped = state_dict_mismatch(network.state_dict(), saved)
            if not (missing or unexpected or reshaped):
                continue
            parts = []
            if reshaped:
                name, in_file, in_network = reshaped[0]
                parts.append(
                    f"{len(reshaped)} tensors differ in shape (e.g. '{name}': {in_file} in the file, {in_network} in "
                    "the network)"
                )
            if missing:
                total = len(network.state_dict())
                parts.append(
                    f"{len(missing)} of the network's {total} tensors are not in the file (e.g. '{missing[0]}')"
                )
            if unexpected:
                parts.append(
                    f"{len(unexpected)} tensors of the file have no place in the network (e.g. '{unexpected[0]}')"
                )
            return (
                f"checkpoint '{self.load_path}' does not fit the configured network {type(network).__name__} "
                f"('{key}'): {'; '.join(parts)}. {self.hint}"
            )
        return None
