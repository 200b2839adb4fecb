"""A ``prepare_batch`` for MONAI evaluators that hole-masks the inputs: the masked-input robustness evaluation."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

import torch
from monai.engines.utils import PrepareBatch, PrepareBatchDefault

from monai_masksup.keys import PluginKeys
from monai_masksup.transforms.apply_mask import apply_mask

__all__ = ["MaskedInputBatch"]


class MaskedInputBatch(PrepareBatch):
    """
    Prepare a batch like ``prepare_batch`` (MONAI's default: ``batch["image"]``, ``batch["label"]`` on the
    device), then replace the masked pixels of the inputs by ``fill_value`` with
    :py:func:`monai_masksup.transforms.apply_mask`, masks drawn by ``mask_generator`` (for example
    ``HoleMaskGenerator(coverage=(0.2, 0.3))``). Given to a ``SupervisedEvaluator`` as ``prepare_batch``, it
    evaluates a network on masked inputs with the evaluator's own inferer, post-processing and metrics; the
    evaluator's output ``"image"`` is then the masked input.

    The masks are drawn with a CPU ``torch.Generator`` seeded with ``seed`` (rasterised on the inputs' device),
    so they depend neither on the device nor on other random draws; :meth:`reset` re-seeds it, so that each run
    over a loader of fixed order masks the same images in the same way. Each mask is also stored in a dict
    batch under ``mask_key`` (``engine.state.batch``), where handlers find it, e.g. to measure the coverage.

    Args:
        mask_generator: a mask generator ``(batch_size, spatial_size, device=None, generator=None) ->
            (B, 1, *spatial)``, 1 = masked.
        seed: seed of the masks.
        fill_value: value written into the masked pixels.
        prepare_batch: the preparation of the unmasked batch, returning ``(inputs, targets)`` or
            ``(inputs, targets, args, kwargs)``.
        mask_key: batch key under which the masks are stored; ``None`` not to store them.
    """

    def __init__(
        self,
        mask_generator: Callable[..., torch.Tensor],
        seed: int = 0,
        fill_value: float = 0.0,
        prepare_batch: Callable = PrepareBatchDefault(),
        mask_key: str | None = PluginKeys.HOLE_MASK,
    ) -> None:
        self.mask_generator = mask_generator
        self.seed = int(seed)
        self.fill_value = float(fill_value)
        self.prepare_batch = prepare_batch
        self.mask_key = mask_key
        self.generator = torch.Generator(device="cpu")
        self.reset()

    def reset(self) -> None:
        """Re-seed the masks: the next batches get the masks of a fresh run."""
        self.generator.manual_seed(self.seed)

    def __call__(
        self,
        batchdata: Any,
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> Any:
        """
        Args:
            batchdata: the loader's batch; inputs ``(B, C, *spatial)``.
            device: device of the inputs (and of the masks).
            non_blocking: non-blocking copy to ``device``.
            kwargs: further arguments of ``prepare_batch`` (the evaluator's ``to_kwargs``).

        Returns:
            what ``prepare_batch`` returns, with masked inputs.
        """
        prepared = self.prepare_batch(batchdata, device, non_blocking, **kwargs)
        inputs = prepared[0]
        mask = self.mask_generator(
            inputs.shape[0], tuple(inputs.shape[2:]), device=inputs.device, generator=self.generator
        )
        masked = apply_mask(inputs, mask, self.fill_value, batched=True)
        if self.mask_key is not None and isinstance(batchdata, MutableMapping):
            batchdata[self.mask_key] = mask
        return (masked, *prepared[1:])
