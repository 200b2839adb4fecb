"""Every random state a training run draws from, saved and restored as one object of a checkpoint."""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from monai.transforms import Randomizable, Transform

__all__ = ["RandomStates", "random_transforms"]


def random_transforms(transform: Any, path: str = "transform") -> Iterator[tuple[str, Randomizable]]:
    """
    Yield every ``Randomizable`` in a transform chain with a stable path, e.g. ``"transform.transforms.7"``:
    the members of ``Compose`` (and ``OneOf``, ``RandomOrder``) at any depth, and random transforms held by a
    public attribute of another transform (``RandCoarseDropoutd.dropper``).

    MONAI's ``set_rnd`` walks a dataset the same way to *seed* its transforms; here the states are *read*, so
    that they can be saved. Attributes whose names start with ``_`` are not followed.

    Args:
        transform: a transform, a ``Compose`` or a list of transforms (``dataset.transform``).
        path: the name of ``transform`` in the yielded paths.

    Yields:
        ``(path, randomizable)`` in a fixed order; an object reachable twice is yielded once.
    """
    seen: set[int] = set()

    def visit(obj: Any, where: str) -> Iterator[tuple[str, Randomizable]]:
        if isinstance(obj, (list, tuple)):
            for i, item in enumerate(obj):
                yield from visit(item, f"{where}.{i}")
            return
        if not isinstance(obj, (Transform, Randomizable)) or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, Randomizable):
            yield where, obj
        for name, value in vars(obj).items():
            if not name.startswith("_") and name != "R":
                yield from visit(value, f"{where}.{name}")

    yield from visit(transform, path)


def _numpy_state(legacy_state: tuple) -> dict[str, Any]:
    # the legacy tuple holds a numpy array, which `torch.load(weights_only=True)` refuses: keep tensors and numbers
    name, keys, pos, has_gauss, cached_gaussian = legacy_state
    return {
        "name": name,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached_gaussian),
    }


def _numpy_tuple(state: dict[str, Any]) -> tuple:
    keys = state["keys"].cpu().numpy().astype(np.uint32)
    return (state["name"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"])


def _generator_state(generator: Any) -> torch.Tensor | None:
    return generator.get_state() if isinstance(generator, torch.Generator) else None


class RandomStates:
    """
    The random states a training run depends on, as one :py:class:`~monai_masksup.engines.extra_state.Stateful`:

    - the global generators of torch (CPU, and every CUDA device once CUDA is initialised), numpy and Python;
    - the data loader's order: ``data_loader.generator`` and ``data_loader.sampler.generator`` when they are
      ``torch.Generator`` s (with neither, ``RandomSampler`` seeds each epoch from the global torch generator,
      restored above; ``DistributedSampler`` shuffles by seed and epoch);
    - the transforms: ``R`` of every random transform of ``data_loader.dataset.transform``
      (see :func:`random_transforms`).

    With ``num_workers=0`` this is all a CPU run draws from, so a run restored from a checkpoint continues
    exactly as the uninterrupted run. With workers (not persistent), each epoch's workers are seeded from the
    global torch generator (or ``data_loader.generator``) when the epoch's iterator is created, which is also
    restored; ``persistent_workers=True`` keeps the workers' transform states in the worker processes, which a
    checkpoint cannot reach.

    State a transform keeps outside ``R`` is not saved either: the masks that ``RandHoleMask(d)`` with
    ``draw_batch > 1`` draws ahead for its next calls are lost, and a resumed run draws a fresh set where the
    uninterrupted run used them. Resume is exact with ``draw_batch=1`` (the default) only.

    Args:
        data_loader: the training data loader; ``None`` saves only the global generators.
    """

    def __init__(self, data_loader: Any = None) -> None:
        self.data_loader = data_loader

    def _loader_generators(self) -> dict[str, Any]:
        if self.data_loader is None:
            return {}
        sampler = getattr(self.data_loader, "sampler", None)
        return {
            "generator": getattr(self.data_loader, "generator", None),
            "sampler_generator": getattr(sampler, "generator", None),
        }

    def _transforms(self) -> dict[str, Randomizable]:
        dataset = getattr(self.data_loader, "dataset", None)
        transform = getattr(dataset, "transform", None)
        return dict(random_transforms(transform)) if transform is not None else {}

    def state_dict(self) -> dict[str, Any]:
        """
        Returns:
            ``{"torch", "cuda", "numpy", "python", "data_loader", "transforms"}``: tensors, numbers, strings and
            tuples only, so that ``torch.load(weights_only=True)`` reads it.
        """
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
        loader = {name: _generator_state(gen) for name, gen in self._loader_generators().items()}
        return {
            "torch": torch.get_rng_state(),
            "cuda": cuda,
            "numpy": _numpy_state(np.random.get_state(legacy=True)),
            "python": random.getstate(),
            "data_loader": {name: state for name, state in loader.items() if state is not None},
            "transforms": {path: _numpy_state(t.R.get_state(legacy=True)) for path, t in self._transforms().items()},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """
        Restore the states of :meth:`state_dict`. A random transform or generator that the saved states do not
        name keeps its state, with a warning: the run then continues, but not as the uninterrupted run.
        """
        torch.set_rng_state(state_dict["torch"].cpu())
        cuda = state_dict.get("cuda") or []
        if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
        elif cuda:
            warnings.warn(
                f"RandomStates: {len(cuda)} saved CUDA generator states do not fit this machine; not restored."
            )
        np.random.set_state(_numpy_tuple(state_dict["numpy"]))
        random.setstate(_python_state(state_dict["python"]))

        saved_loader = state_dict.get("data_loader", {})
        for name, generator in self._loader_generators().items():
            if isinstance(generator, torch.Generator):
                if name in saved_loader:
                    generator.set_state(saved_loader[name].cpu())
                else:
                    warnings.warn(f"RandomStates: no saved state for the data loader's {name}; its order differs.")

        saved_transforms = state_dict.get("transforms", {})
        current = self._transforms()
        for path, transform in current.items():
            if path in saved_transforms:
                transform.R.set_state(_numpy_tuple(saved_transforms[path]))
        missing = sorted(set(current) - set(saved_transforms))
        if missing:
            warnings.warn(
                f"RandomStates: no saved random state for the transforms {', '.join(missing)} (a different transform "
                "chain than the checkpoint's?); they keep their current states."
            )


def _python_state(state: Any) -> tuple:
    # a saved tuple may come back as a list after a round trip through other serialisers
    version, internal, gauss_next = state
    return (version, tuple(internal), gauss_next)
