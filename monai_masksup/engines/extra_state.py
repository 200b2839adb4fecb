"""The contract between engines that own training state of their own and the checkpoint handler that saves it."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["Stateful", "ExtraStateOwner", "GeneratorState"]


@runtime_checkable
class Stateful(Protocol):
    """An object that a checkpoint can save and restore, as ``torch.nn.Module`` and optimizers are."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> None: ...


@runtime_checkable
class ExtraStateOwner(Protocol):
    """
    An engine that holds training state besides the network, optimizer and its own Ignite state: mask random
    generators, EMA teachers, contrastive queues. The plugin's checkpoint handler saves every object of
    ``extra_state()`` beside its ``save_dict`` and restores it on resume, so a resumed run continues with the
    same teacher, queue and masks.
    """

    def extra_state(self) -> dict[str, Stateful]:
        """
        Returns:
            the engine's extra training state by name (names are unique per engine and stable across runs).
        """
        ...


class GeneratorState:
    """
    A ``torch.Generator`` as a :py:class:`Stateful` (``torch.Generator`` has ``get_state`` / ``set_state``
    instead of ``state_dict`` / ``load_state_dict``).

    Args:
        generator: the generator whose state is saved and restored.
    """

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def state_dict(self) -> dict[str, Any]:
        """Returns: ``{"state": <uint8 tensor of the generator state>}``."""
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the generator to ``state_dict["state"]``."""
        self.generator.set_state(state_dict["state"].cpu())
