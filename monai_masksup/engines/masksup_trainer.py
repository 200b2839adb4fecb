"""MaskSup training engine: a MONAI ``SupervisedTrainer`` with a clean and a hole-masked branch."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from monai.data import MetaTensor
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents, default_metric_cmp_fn, default_prepare_batch
from monai.inferers import Inferer
from monai.transforms import Transform
from monai.utils import IgniteInfo, min_version, optional_import
from monai.utils.enums import CommonKeys as Keys
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

if TYPE_CHECKING:
    from ignite.engine import Engine, EventEnum
    from ignite.metrics import Metric
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Metric, _ = optional_import("ignite.metrics", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Metric")
    EventEnum, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "EventEnum")

__all__ = ["MaskSupTrainer", "BRANCH_MODES", "MaskSupKeys"]

BRANCH_MODES = ("separate", "batched")


class MaskSupKeys:
    """Extra keys that :class:`MaskSupTrainer` writes into ``engine.state.output``."""

    IMAGE_MASKED = "image_masked"
    PRED_MASKED = "pred_masked"
    HOLE_MASK = "hole_mask"
    LOSS_SEG = "loss_seg"
    LOSS_CONTEXT = "loss_context"
    LOSS_TASK_SIM = "loss_task_sim"


class MaskSupTrainer(SupervisedTrainer):
    """
    Masked supervised training (MaskSup): every iteration runs the network on the image and on a copy with
    random irregular holes, and optimises a loss of both predictions and the label.

    H. Zunair, A. Ben Hamza, "Masked Supervised Learning for Semantic Segmentation", BMVC 2022.

    Per iteration:

    1. ``prepare_batch`` gives ``image`` and ``label`` on ``device`` (exactly as in ``SupervisedTrainer``).
    2. Hole masks ``(B, 1, *spatial)`` (1 = hole) are drawn by ``mask_generator`` directly on the image's device
       and ``image_masked = image * (1 - hole) + fill_value * hole``. If the batch already holds
       ``batchdata[masked_image_key]`` (e.g. from ``RandHoleMaskd``), that tensor is used instead.
    3. Both images go through the same ``network``: in ``"separate"`` mode with two forward passes (BatchNorm
       statistics per branch, as in the reference implementation), in ``"batched"`` mode with one forward pass
       over the concatenated ``2B`` batch (faster; BatchNorm statistics are shared by both branches).
       A network returning a list/tuple (deep supervision) contributes its first element, the full-resolution
       output; the auxiliary outputs are not used.
    4. ``loss_function(pred_clean, pred_masked, label)`` is computed in float32 (logits are cast with ``.float()``
       outside autocast), then backward and the optimizer step, with gradient accumulation and AMP as in
       ``SupervisedTrainer``.

    ``engine.state.output`` holds the usual ``CommonKeys`` (``IMAGE``, ``LABEL``, ``PRED`` = clean-branch
    prediction, ``LOSS``) plus, for logging, the python floats ``"loss_seg"``, ``"loss_context"``,
    ``"loss_task_sim"`` (taken from ``loss_function.last_components`` when the loss has it) and the detached
    tensors ``"image_masked"``, ``"pred_masked"`` and ``"hole_mask"`` (the latter only when the mask is known).
    The events ``FORWARD_COMPLETED`` (after both branches), ``LOSS_COMPLETED``, ``BACKWARD_COMPLETED`` and
    ``MODEL_COMPLETED`` fire as in ``SupervisedTrainer``, so every MONAI handler works unchanged, e.g.
    ``StatsHandler(output_transform=monai.handlers.from_engine(["loss_seg"], first=True))``.

    AMP: with ``amp=True`` the forward passes run under ``torch.autocast`` on the device type of ``device``
    with ``amp_kwargs``. For float16 (the CUDA default) the ``GradScaler`` that ``SupervisedTrainer`` creates
    (``engine.scaler``) scales the loss; with ``amp_kwargs={"dtype": torch.bfloat16}`` no scaler is used since
    bfloat16 has float32's exponent range.

    Distributed: ``network`` may be a ``DistributedDataParallel`` wrapper. In ``"separate"`` mode both forward
    passes feed one loss and one backward, which DDP supports with ``find_unused_parameters=False`` (default).

    Args:
        device: an object representing the device on which to run.
        max_epochs: the total epoch number for trainer to run.
        train_data_loader: Ignite engine uses it to run, must be Iterable or torch.DataLoader.
        network: network to train; may be wrapped in ``DistributedDataParallel``.
        optimizer: the optimizer associated with the network.
        loss_function: callable ``(pred_clean, pred_masked, label) -> scalar``; default ``MaskSupLoss()``.
        epoch_length, non_blocking, prepare_batch, iteration_update, inferer, postprocessing, key_train_metric,
        additional_metrics, metric_cmp_fn, train_handlers, amp, event_names, event_to_attr, decollate,
        optim_set_to_none, to_kwargs, amp_kwargs, compile, compile_kwargs, accumulation_steps:
            as in ``monai.engines.SupervisedTrainer``.
        mask_generator: callable ``(batch_size, spatial_size, device=..., generator=...) -> (B, 1, *spatial)``
            float hole mask, 1 = hole; default ``HoleMaskGenerator("high")``.
        branch_mode: ``"separate"`` (two forward passes, default) or ``"batched"`` (one pass over ``2B`` images).
            In ``"batched"`` mode extra network ``args``/``kwargs`` from ``prepare_batch`` are passed unchanged,
            so they must not depend on the batch size.
        masked_image_key: key of a batch-provided masked image; used instead of generating masks when present.
        hole_mask_key: key of the batch-provided hole mask that goes with ``masked_image_key`` (optional; only
            copied to ``engine.state.output["hole_mask"]``).
        fill_value: intensity written into the holes.
        mask_seed: seed of a CPU ``torch.Generator`` that draws the hole masks, so that runs are reproducible; under
            ``torch.distributed`` the seed is offset by the rank so that ranks draw different masks.
            ``None`` uses the global torch random state.

    Raises:
        ValueError: When ``branch_mode`` is not one of ``"separate"``, ``"batched"``.
        ValueError: When ``accumulation_steps`` is not a positive integer.
        TypeError: When ``mask_generator`` or ``loss_function`` is not callable.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        network: torch.nn.Module,
        optimizer: Optimizer,
        loss_function: Callable | None = None,
        epoch_length: int | None = None,
        non_blocking: bool = False,
        prepare_batch: Callable = default_prepare_batch,
        iteration_update: Callable[[Engine, Any], Any] | None = None,
        inferer: Inferer | None = None,
        postprocessing: Transform | None = None,
        key_train_metric: dict[str, Metric] | None = None,
        additional_metrics: dict[str, Metric] | None = None,
        metric_cmp_fn: Callable = default_metric_cmp_fn,
        train_handlers: Sequence | None = None,
        amp: bool = False,
        event_names: list[str | EventEnum | type[EventEnum]] | None = None,
        event_to_attr: dict | None = None,
        decollate: bool = True,
        optim_set_to_none: bool = False,
        to_kwargs: dict | None = None,
        amp_kwargs: dict | None = None,
        compile: bool = False,
        compile_kwargs: dict | None = None,
        accumulation_steps: int = 1,
        mask_generator: Callable | None = None,
        branch_mode: str = "separate",
        masked_image_key: str = MaskSupKeys.IMAGE_MASKED,
        hole_mask_key: str = MaskSupKeys.HOLE_MASK,
        fill_value: float = 0.0,
        mask_seed: int | None = None,
    ) -> None:
        if branch_mode not in BRANCH_MODES:
            raise ValueError(f"MaskSupTrainer: `branch_mode` must be one of {BRANCH_MODES}, got {branch_mode!r}.")
        if loss_function is None:
            from monai_masksup.losses import MaskSupLoss

            loss_function = MaskSupLoss()
        if mask_generator is None:
            from monai_masksup.transforms import HoleMaskGenerator

            mask_generator = HoleMaskGenerator("high")
        if not callable(loss_function):
            raise TypeError(f"MaskSupTrainer: `loss_function` must be callable, got {type(loss_function).__name__}.")
        if not callable(mask_generator):
            raise TypeError(f"MaskSupTrainer: `mask_generator` must be callable, got {type(mask_generator).__name__}.")
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            network=network,
            optimizer=optimizer,
            loss_function=loss_function,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            prepare_batch=prepare_batch,
            iteration_update=iteration_update,
            inferer=inferer,
            postprocessing=postprocessing,
            key_train_metric=key_train_metric,
            additional_metrics=additional_metrics,
            metric_cmp_fn=metric_cmp_fn,
            train_handlers=train_handlers,
            amp=amp,
            event_names=event_names,
            event_to_attr=event_to_attr,
            decollate=decollate,
            optim_set_to_none=optim_set_to_none,
            to_kwargs=to_kwargs,
            amp_kwargs=amp_kwargs,
            compile=compile,
            compile_kwargs=compile_kwargs,
            accumulation_steps=accumulation_steps,
        )
        self.mask_generator = mask_generator
        self.branch_mode = branch_mode
        self.masked_image_key = masked_image_key
        self.hole_mask_key = hole_mask_key
        self.fill_value = float(fill_value)
        self.mask_seed = mask_seed
        self._mask_rng: torch.Generator | None = None

    def mask_rng(self) -> torch.Generator | None:
        """
        Return the seeded generator of the hole masks (created at the first call), or ``None`` when ``mask_seed``
        is ``None`` (then the global torch random state is used).

        It is a CPU generator: ``HoleMaskGenerator`` draws its few random parameters on the generator's device
        and renders the masks on the batch's device, so one seed gives the same masks on CPU and CUDA.
        """
        if self.mask_seed is None:
            return None
        if self._mask_rng is None:
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
            self._mask_rng = torch.Generator(device="cpu")
            self._mask_rng.manual_seed(int(self.mask_seed) + rank)
        return self._mask_rng

    def _masked_inputs(
        self, engine: MaskSupTrainer, batchdata: Any, inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return ``(image_masked, hole_mask)`` for ``inputs``: from the batch when present, else generated."""
        if isinstance(batchdata, dict) and self.masked_image_key in batchdata:
            masked = torch.as_tensor(batchdata[self.masked_image_key])
            if masked.shape != inputs.shape:
                raise ValueError(
                    f"MaskSupTrainer: batch[{self.masked_image_key!r}] has shape {tuple(masked.shape)}, "
                    f"expected the image shape {tuple(inputs.shape)}."
                )
            masked = masked.to(device=inputs.device, non_blocking=engine.non_blocking, **engine.to_kwargs)
            hole = batchdata.get(self.hole_mask_key)
            if isinstance(hole, torch.Tensor):
                hole = hole.to(device=inputs.device, non_blocking=engine.non_blocking)
            else:
                hole = None
            return masked, hole
        hole = self.mask_generator(
            inputs.shape[0], tuple(inputs.shape[2:]), device=inputs.device, generator=self.mask_rng()
        )
        hole = torch.as_tensor(hole).to(device=inputs.device, dtype=inputs.dtype)
        masked = inputs * (1.0 - hole) + self.fill_value * hole
        return masked, hole

    def _forward_branches(
        self, engine: MaskSupTrainer, inputs: torch.Tensor, masked: torch.Tensor, args: tuple, kwargs: dict
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the clean and the masked branch through ``engine.network``; return both predictions."""
        if self.branch_mode == "batched":
            both = _first_output(engine.inferer(torch.cat([inputs, masked], dim=0), engine.network, *args, **kwargs))
            pred_clean, pred_masked = torch.split(both, inputs.shape[0], dim=0)
            return pred_clean, pred_masked
        pred_clean = _first_output(engine.inferer(inputs, engine.network, *args, **kwargs))
        pred_masked = _first_output(engine.inferer(masked, engine.network, *args, **kwargs))
        return pred_clean, pred_masked

    @staticmethod
    def _accumulation_flags(engine: MaskSupTrainer) -> tuple[bool, bool]:
        """Return ``(zero_grad_now, step_now)`` for gradient accumulation, as ``SupervisedTrainer`` does."""
        acc = engine.accumulation_steps
        if acc <= 1:
            return True, True
        epoch_length = engine.state.epoch_length
        if epoch_length is not None:
            local_iter = (engine.state.iteration - 1) % epoch_length
            # flush at the end of the epoch so that a remainder of mini-batches is not dropped
            return local_iter % acc == 0, (local_iter + 1) % acc == 0 or (local_iter + 1) == epoch_length
        local_iter = engine.state.iteration - 1
        return local_iter % acc == 0, (local_iter + 1) % acc == 0

    def _iteration(self, engine: MaskSupTrainer, batchdata: dict[str, torch.Tensor]) -> dict:  # type: ignore[override]
        """
        One MaskSup training iteration in the Ignite engine.

        Args:
            engine: the ``MaskSupTrainer`` executing the iteration.
            batchdata: input data for this iteration, usually a dictionary with ``image`` and ``label``.

        Returns:
            ``engine.state.output``: ``IMAGE``, ``LABEL``, ``PRED`` (clean branch), ``LOSS`` and the MaskSup
            logging keys (see the class docstring).

        Raises:
            ValueError: When ``batchdata`` is None.
        """
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        if len(batch) == 2:
            inputs, targets = batch
            args: tuple = ()
            kwargs: dict = {}
        else:
            inputs, targets, args, kwargs = batch
        masked, hole = self._masked_inputs(engine, batchdata, inputs)

        engine.state.output = {Keys.IMAGE: inputs, Keys.LABEL: targets}
        # torch.compile does not trace MetaTensor (pytorch/pytorch#117026): run the graph on plain tensors
        # while the output dictionary keeps the MetaTensors that came in
        if self.compile:
            inputs, masked = _plain(inputs), _plain(masked)
            targets = _plain(targets)

        device_type = torch.device(engine.state.device).type
        autocast = torch.autocast(device_type, **engine.amp_kwargs) if engine.amp else contextlib.nullcontext()
        use_scaler = (
            engine.amp
            and engine.scaler is not None
            and engine.scaler.is_enabled()
            and engine.amp_kwargs.get("dtype", torch.get_autocast_dtype(device_type)) == torch.float16
        )

        def _compute_pred_loss() -> torch.Tensor:
            with autocast:
                pred_clean, pred_masked = self._forward_branches(engine, inputs, masked, args, kwargs)
            if self.compile and isinstance(engine.state.output[Keys.IMAGE], MetaTensor):
                pred_clean = MetaTensor(pred_clean, meta=engine.state.output[Keys.IMAGE].meta)
            engine.state.output[Keys.PRED] = pred_clean
            engine.state.output[MaskSupKeys.IMAGE_MASKED] = masked.detach()
            engine.state.output[MaskSupKeys.PRED_MASKED] = pred_masked.detach()
            if hole is not None:
                engine.state.output[MaskSupKeys.HOLE_MASK] = hole.detach()
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            # the loss (sigmoid/softmax, BCE, MSE of probabilities) is kept in float32 under AMP
            with torch.autocast(device_type, enabled=False) if engine.amp else contextlib.nullcontext():
                loss = engine.loss_function(pred_clean.float(), pred_masked.float(), targets).mean()
            engine.state.output[Keys.LOSS] = loss
            components = getattr(engine.loss_function, "last_components", None)
            if isinstance(components, dict) and components:
                engine.state.output.update(_component_floats(components))
            engine.fire_event(IterationEvents.LOSS_COMPLETED)
            return loss

        zero_grad_now, step_now = self._accumulation_flags(engine)
        acc = engine.accumulation_steps
        engine.network.train()
        if zero_grad_now:
            engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)

        loss = _compute_pred_loss()
        scaled = loss / acc if acc > 1 else loss
        if use_scaler:
            engine.scaler.scale(scaled).backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            if step_now:
                engine.scaler.step(engine.optimizer)
                engine.scaler.update()
        else:
            scaled.backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            if step_now:
                engine.optimizer.step()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output


def _first_output(pred: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """Return the full-resolution prediction of a deep-supervision network (list/tuple) or ``pred`` itself."""
    if isinstance(pred, (list, tuple)):
        if len(pred) == 0:
            raise ValueError("MaskSupTrainer: the network returned an empty list/tuple of predictions.")
        return pred[0]
    return pred


def _component_floats(components: dict[str, Any]) -> dict[str, float]:
    """
    Return ``{"loss_<name>": float}`` for the loss components (scalar tensors or numbers).

    The tensors are stacked and read back with one ``tolist()``: converting each with ``float()`` would
    synchronise a CUDA stream once per component and iteration.

    Raises:
        ValueError: when a component is not a scalar.
    """
    names = list(components)
    tensors = [v for v in components.values() if isinstance(v, torch.Tensor)]
    for name, value in components.items():
        if isinstance(value, torch.Tensor) and value.numel() != 1:
            raise ValueError(
                f"MaskSupTrainer: loss_function.last_components[{name!r}] must be a scalar, "
                f"got shape {tuple(value.shape)}."
            )
    if len(tensors) == len(names) and len({t.device for t in tensors}) == 1:
        # float64 only when a component already is: float32 is exact for the usual components, and some
        # devices have no float64
        dtype = torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
        values = torch.stack([t.detach().reshape(()).to(dtype) for t in tensors]).tolist()
    else:
        values = [float(v) for v in components.values()]
    return {f"loss_{name}": value for name, value in zip(names, values)}


def _plain(x: Any) -> Any:
    """Return a MetaTensor as a plain ``torch.Tensor`` (other values unchanged)."""
    if isinstance(x, MetaTensor):
        warnings.warn("MaskSupTrainer: MetaTensor converted to torch.Tensor for torch.compile.", stacklevel=3)
        return x.as_tensor()
    return x
