"""The shared training step of the plugin's trainers: a MONAI ``SupervisedTrainer`` iteration whose loss a subclass
computes from as many forward passes as its method needs."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from monai.data import MetaTensor
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents, default_metric_cmp_fn, default_prepare_batch
from monai.engines.workflow import Workflow
from monai.inferers import Inferer
from monai.transforms import Transform
from monai.utils import IgniteInfo, convert_to_tensor, min_version, optional_import
from monai.utils.enums import CommonKeys as Keys
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

from monai_masksup.engines.extra_state import Stateful
from monai_masksup.losses.components import LossComponents

if TYPE_CHECKING:
    from ignite.engine import Engine, EventEnum
    from ignite.metrics import Metric
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Metric, _ = optional_import("ignite.metrics", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Metric")
    EventEnum, _ = optional_import(
        "ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "EventEnum", as_type="base"
    )

__all__ = ["MultiPassTrainer", "TrainerEvents", "TrainingBatch", "TrainingStep", "first_output", "to_float32"]


class TrainerEvents(EventEnum):
    """
    Events that :class:`MultiPassTrainer` fires besides MONAI's ``IterationEvents``.

    - ``OPTIMIZER_STEPPED``: after a real ``optimizer.step()``, between ``BACKWARD_COMPLETED`` and
      ``MODEL_COMPLETED``. It does not fire on the iterations that only accumulate gradients, nor when the
      float16 ``GradScaler`` skipped the step because of inf/nan gradients. An EMA teacher updates on it.
    """

    OPTIMIZER_STEPPED = "optimizer_stepped"


@dataclass
class TrainingBatch:
    """
    One batch as :meth:`MultiPassTrainer.compute_loss` receives it.

    Attributes:
        inputs: the network input on the trainer's device, ``(B, C, *spatial)`` (a plain tensor under
            ``compile=True``, see :class:`MultiPassTrainer`).
        targets: the label on the trainer's device, as ``prepare_batch`` gives it.
        args, kwargs: extra network arguments from a 4-tuple ``prepare_batch`` (empty for the 2-tuple form).
        data: the batch as the data loader gave it, for keys that ``prepare_batch`` does not move (e.g. a
            batch-provided ``image_masked``).
    """

    inputs: torch.Tensor
    targets: Any
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    data: Any = None


class TrainingStep(NamedTuple):
    """
    What :meth:`MultiPassTrainer.compute_loss` returns for a batch.

    Attributes:
        loss: the loss to back-propagate, a tensor (its ``mean()`` is taken, as in ``SupervisedTrainer``).
        pred: the network's raw output on ``TrainingBatch.inputs``: a tensor, or the list/tuple of a
            deep-supervision network; ``engine.state.output["pred"]`` gets :func:`first_output` of it.
        outputs: extra entries of ``engine.state.output`` (e.g. ``image_masked``); tensors are stored detached,
            ``None`` values are left out. The keys must differ from ``CommonKeys``.
        components: extra loss terms to log as ``"loss_<name>"`` floats, besides those of a ``loss_function``
            that implements :class:`~monai_masksup.losses.LossComponents` (e.g. a mean teacher's supervised and
            consistency terms computed by two losses).
    """

    loss: torch.Tensor
    pred: torch.Tensor | Sequence[torch.Tensor]
    outputs: Mapping[str, Any] | None = None
    components: Mapping[str, Any] | None = None


class MultiPassTrainer(SupervisedTrainer):
    """
    A ``SupervisedTrainer`` whose loss comes from :meth:`compute_loss`, which a subclass overrides to run the
    network as often as its method needs (MaskSup's clean and masked branches, a mean teacher's student and
    teacher, MaskContrast's views). Everything around the loss is shared and behaves as in MONAI, so every MONAI
    handler works unchanged:

    1. ``prepare_batch`` gives ``(inputs, targets)`` or ``(inputs, targets, args, kwargs)`` on ``device``;
       ``engine.state.output`` starts as ``{IMAGE: inputs, LABEL: targets}``.
    2. ``compute_loss(TrainingBatch) -> TrainingStep``. Its forward passes go through :meth:`forward`, which runs
       the ``inferer`` under ``torch.autocast`` on the device type of ``device`` with ``amp_kwargs`` when
       ``amp=True``; everything else in it, the loss above all, runs outside autocast, on float32 logits
       (:func:`to_float32`). A second network (an EMA teacher) runs inside :meth:`autocast`, and the batches of
       extra data loaders (unlabelled data) are moved with :meth:`prepare`. The default implementation is
       ``SupervisedTrainer``'s step: ``loss_function(to_float32(forward(inputs)), targets)``.
    3. ``PRED`` = :func:`first_output` of ``TrainingStep.pred`` (metrics never see a deep-supervision list), the
       extra outputs are stored, and ``FORWARD_COMPLETED`` fires. It fires once ``compute_loss`` has returned,
       i.e. after all forward passes **and** the loss evaluation: handlers there see ``PRED`` and the extra
       outputs, but changing ``PRED`` does not change the loss (``SupervisedTrainer`` reads ``PRED`` back for
       its loss; a multi-pass loss has no single ``PRED`` to read).
    4. ``LOSS`` = ``loss.mean()`` and the loss terms as python floats ``"loss_<name>"`` (from
       ``loss_function.loss_components()`` when it is a :class:`~monai_masksup.losses.LossComponents`, then
       ``TrainingStep.components``; read back with one host synchronisation); ``LOSS_COMPLETED`` fires.
    5. Backward (loss divided by ``accumulation_steps``, scaled by the ``GradScaler`` for float16);
       ``BACKWARD_COMPLETED`` fires.
    6. On a step iteration: ``optimizer.step()`` (through the scaler for float16);
       ``TrainerEvents.OPTIMIZER_STEPPED`` fires when the optimizer really stepped. ``MODEL_COMPLETED`` fires last.

    Gradient accumulation is ``SupervisedTrainer``'s: gradients are zeroed at the first of every
    ``accumulation_steps`` iterations and the optimizer steps at the last one, and at the last iteration of an
    epoch whose length is known, so a remainder of mini-batches is not dropped. ``LOSS`` is the unscaled loss.

    AMP: ``torch.autocast(device.type, **amp_kwargs)``, so CPU (bfloat16 by default) works too. A ``GradScaler``
    for the device type is created at :meth:`run` and used only when the autocast dtype is float16 (the CUDA
    default); with ``amp_kwargs={"dtype": torch.bfloat16}`` there is no loss scaling, as bfloat16 has float32's
    exponent range. A float16 step that the scaler skips is recognised by its scale decreasing in ``update()``.

    ``torch.compile``: MetaTensors are converted to plain tensors before the forward passes
    (pytorch/pytorch#117026) while ``IMAGE``/``LABEL`` keep the MetaTensors that came in and ``PRED`` gets the
    image's meta data back, as in ``SupervisedTrainer``.

    Extra state: subclasses register training state besides network and optimizer (mask generators, EMA
    teachers, queues) with :meth:`register_extra_state`; :meth:`extra_state` implements
    :class:`~monai_masksup.engines.extra_state.ExtraStateOwner` for the checkpoint handler.

    Args:
        device, max_epochs, train_data_loader, network, optimizer, loss_function, epoch_length, non_blocking,
        prepare_batch, inferer, postprocessing, key_train_metric, additional_metrics, metric_cmp_fn,
        train_handlers, amp, event_names, event_to_attr, decollate, optim_set_to_none, to_kwargs, amp_kwargs,
        compile, compile_kwargs, accumulation_steps: as in ``monai.engines.SupervisedTrainer``.
        iteration_update: must be ``None``. In MONAI it replaces the whole iteration, which would silently drop
            the method's loss; it is refused rather than ignored. Attach handlers to the iteration events, or
            override :meth:`compute_loss`, instead.

    Raises:
        ValueError: when ``iteration_update`` is given, or ``accumulation_steps`` is not a positive integer.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        network: torch.nn.Module,
        optimizer: Optimizer,
        loss_function: Callable,
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
    ) -> None:
        if iteration_update is not None:
            raise ValueError(
                f"{type(self).__name__}: `iteration_update` is not supported: it would replace the whole training "
                "iteration and silently drop the method's loss. Attach a handler to an iteration event, or "
                "override `compute_loss`, instead."
            )
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
            iteration_update=None,
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
        self.register_events(*TrainerEvents)
        self._extra_state: dict[str, Stateful] = {}

    def run(self) -> None:  # type: ignore[override]
        """
        Execute training, as ``SupervisedTrainer.run`` does, with a ``GradScaler`` for the device type that is
        enabled only for float16 autocast (MONAI's ``Trainer.run`` makes a CUDA one for every ``amp`` run).
        """
        self.scaler = torch.amp.GradScaler(self._device_type(), enabled=self._scales_loss()) if self.amp else None
        # Trainer.run would replace the scaler again; it does nothing else
        Workflow.run(self)

    def register_extra_state(self, name: str, obj: Stateful) -> None:
        """
        Register training state that a checkpoint must save and restore besides network and optimizer.

        Args:
            name: unique name of ``obj`` in this engine, stable across runs (it names the entry in checkpoints).
            obj: an object with ``state_dict()`` / ``load_state_dict()``, e.g. an EMA teacher or
                ``GeneratorState(torch.Generator)``.

        Raises:
            ValueError: when ``name`` is not a non-empty string or is already registered.
            TypeError: when ``obj`` has no ``state_dict`` / ``load_state_dict``.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"{type(self).__name__}.register_extra_state: `name` must be a non-empty string.")
        if name in self._extra_state:
            raise ValueError(f"{type(self).__name__}.register_extra_state: {name!r} is already registered.")
        if not isinstance(obj, Stateful):
            raise TypeError(
                f"{type(self).__name__}.register_extra_state: {name!r} must have state_dict() and "
                f"load_state_dict(), got {type(obj).__name__}."
            )
        self._extra_state[name] = obj

    def extra_state(self) -> dict[str, Stateful]:
        """
        Returns:
            the registered extra training state by name (a new dict; the objects themselves, not copies).
        """
        return dict(self._extra_state)

    def prepare(self, batchdata: Any) -> TrainingBatch:
        """
        Move a batch to the device with ``prepare_batch`` and return it as a :class:`TrainingBatch`; subclasses
        may use it for the batches of extra data loaders (e.g. unlabelled ones).

        Raises:
            ValueError: when ``batchdata`` is None.
        """
        return self._training_batch(self._prepare_tensors(batchdata), batchdata)

    def forward(self, inputs: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        """
        Run ``network`` on ``inputs`` through the ``inferer``, under autocast when ``amp=True``.

        Args:
            inputs: a batch ``(B, C, *spatial)`` on the trainer's device.
            args, kwargs: extra network arguments (``TrainingBatch.args`` / ``kwargs``).

        Returns:
            the network's raw output: a tensor, or a list/tuple for a deep-supervision network.
        """
        with self.autocast():
            return self.inferer(inputs, self.network, *args, **kwargs)

    def autocast(self) -> contextlib.AbstractContextManager:
        """
        Returns:
            ``torch.autocast`` on the device type of ``device`` with ``amp_kwargs`` when ``amp=True``, else a null
            context: the context of :meth:`forward`, for a second network such as an EMA teacher.
        """
        return torch.autocast(self._device_type(), **self.amp_kwargs) if self.amp else contextlib.nullcontext()

    def compute_loss(self, batch: TrainingBatch) -> TrainingStep:
        """
        Return the loss and the outputs of one batch; subclasses override this one method.

        The forward passes use :meth:`forward` (autocast); the loss is computed here, outside autocast, on
        float32 logits. ``FORWARD_COMPLETED`` fires after this method returns. This default is
        ``SupervisedTrainer``'s step: ``loss_function(to_float32(forward(inputs)), targets)``, so a
        deep-supervision network's full list reaches e.g. ``monai.losses.DeepSupervisionLoss``.

        Args:
            batch: the prepared batch.

        Returns:
            ``TrainingStep(loss, pred, outputs, components)``.
        """
        pred = self.forward(batch.inputs, *batch.args, **batch.kwargs)
        return TrainingStep(self.loss_function(to_float32(pred), batch.targets), pred)

    def _device_type(self) -> str:
        return torch.device(self.state.device).type

    def _scales_loss(self) -> bool:
        """Whether the autocast dtype is float16, the one that needs loss scaling."""
        device_type = self._device_type()
        return bool(self.amp) and self.amp_kwargs.get("dtype", torch.get_autocast_dtype(device_type)) == torch.float16


    def _prepare_tensors(self, batchdata: Any) -> tuple[Any, Any, tuple, dict]:
        """``prepare_batch`` in its 4-tuple form (a 2-tuple gets empty ``args``/``kwargs``)."""
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        batch = self.prepare_batch(batchdata, self.state.device, self.non_blocking, **self.to_kwargs)
        if len(batch) == 2:
            return batch[0], batch[1], (), {}
        inputs, targets, args, kwargs = batch
        return inputs, targets, tuple(args), dict(kwargs)

    def _training_batch(self, prepared: tuple[Any, Any, tuple, dict], batchdata: Any) -> TrainingBatch:
        inputs, targets, args, kwargs = prepared
        # torch.compile does not trace MetaTensor (pytorch/pytorch#117026)
        if self.compile:
            inputs, targets = plain_tensor(inputs, type(self).__name__), plain_tensor(targets, type(self).__name__)
        return TrainingBatch(inputs, targets, args, kwargs, batchdata)

    def _accumulation_flags(self) -> tuple[bool, bool]:
        """Return ``(zero_grad_now, step_now)`` for gradient accumulation, as ``SupervisedTrainer`` decides."""
        acc = self.accumulation_steps
        if acc <= 1:
            return True, True
        epoch_length = self.state.epoch_length
        if epoch_length is not None:
            local_iter = (self.state.iteration - 1) % epoch_length
            # flush at the end of the epoch so that a remainder of mini-batches is not dropped
            return local_iter % acc == 0, (local_iter + 1) % acc == 0 or (local_iter + 1) == epoch_length
        local_iter = self.state.iteration - 1
        return local_iter % acc == 0, (local_iter + 1) % acc == 0

    def _optimizer_step(self, use_scaler: bool) -> bool:
        """Step the optimizer (through the scaler for float16); return whether it really stepped."""
        if not use_scaler:
            self.optimizer.step()
            return True
        # GradScaler.step skips optimizer.step() on inf/nan gradients and update() then lowers the scale
        # (backoff_factor < 1); it never lowers it otherwise. get_scale() syncs, but step() just synced anyway.
        scale = self.scaler.get_scale()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return self.scaler.get_scale() >= scale

    def _iteration(  # type: ignore[override]
        self, engine: MultiPassTrainer, batchdata: dict[str, torch.Tensor]
    ) -> dict:
        """
        One training iteration in the Ignite engine (see the class docstring for the order of its steps).

        Args:
            engine: the trainer executing the iteration (``self``).
            batchdata: input data for this iteration, usually a dictionary with ``image`` and ``label``.

        Returns:
            ``engine.state.output``: ``IMAGE``, ``LABEL``, ``PRED``, ``LOSS``, the extra outputs of
            :meth:`compute_loss` and the ``"loss_<name>"`` floats.

        Raises:
            ValueError: when ``batchdata`` is None, or an extra output uses a ``CommonKeys`` name.
        """
        prepared = engine._prepare_tensors(batchdata)
        engine.state.output = {Keys.IMAGE: prepared[0], Keys.LABEL: prepared[1]}
        batch = engine._training_batch(prepared, batchdata)

        zero_grad_now, step_now = engine._accumulation_flags()
        engine.network.train()
        if zero_grad_now:
            engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)

        step = engine.compute_loss(batch)
        output = engine.state.output
        pred = first_output(step.pred)
        image = output[Keys.IMAGE]
        if engine.compile and isinstance(image, MetaTensor) and not isinstance(pred, MetaTensor):
            pred = MetaTensor(pred, meta=image.meta, applied_operations=image.applied_operations)
        output[Keys.PRED] = pred
        output.update(_extra_outputs(step.outputs, type(engine).__name__))
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)

        loss = step.loss.mean()
        output[Keys.LOSS] = loss
        output.update(engine._component_floats(step.components))
        engine.fire_event(IterationEvents.LOSS_COMPLETED)

        use_scaler = engine.scaler is not None and engine.scaler.is_enabled()
        acc = engine.accumulation_steps
        scaled = loss / acc if acc > 1 else loss
        (engine.scaler.scale(scaled) if use_scaler else scaled).backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        if step_now and engine._optimizer_step(use_scaler):
            engine.fire_event(TrainerEvents.OPTIMIZER_STEPPED)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output

    def _component_floats(self, step_components: Mapping[str, Any] | None) -> dict[str, float]:
        """
        Return ``{"loss_<name>": float}`` for the loss function's components and the step's.

        The tensors are stacked and read back with one ``tolist()``: converting each with ``float()`` would
        synchronise a CUDA stream once per component and iteration.

        Raises:
            ValueError: when a component is not a scalar.
        """
        sources: list[tuple[str, Mapping[str, Any]]] = []
        if isinstance(self.loss_function, LossComponents):
            sources.append(("loss_function.loss_components()", self.loss_function.loss_components()))
        if step_components:
            sources.append(("TrainingStep.components", step_components))
        components: dict[str, Any] = {}
        for source, values in sources:
            for name, value in values.items():
                if isinstance(value, torch.Tensor) and value.numel() != 1:
                    raise ValueError(
                        f"{type(self).__name__}: {source}[{name!r}] must be a scalar, got shape {tuple(value.shape)}."
                    )
                components[name] = value
        if not components:
            return {}
        names = list(components)
        tensors = [v for v in components.values() if isinstance(v, torch.Tensor)]
        if len(tensors) == len(names) and len({t.device for t in tensors}) == 1:
            # float64 only when a component already is: float32 is exact for the usual components, and some
            # devices have no float64
            dtype = torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
            values = torch.stack([t.detach().reshape(()).to(dtype) for t in tensors]).tolist()
        else:
            values = [float(v) for v in components.values()]
        return {f"loss_{name}": value for name, value in zip(names, values)}


def first_output(pred: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """
    Return the full-resolution prediction: the first element of a deep-supervision network's list/tuple of
    outputs, or ``pred`` itself.

    Raises:
        ValueError: when ``pred`` is an empty list/tuple.
    """
    if isinstance(pred, (list, tuple)):
        if len(pred) == 0:
            raise ValueError("the network returned an empty list/tuple of predictions.")
        return pred[0]
    return pred


def to_float32(pred: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor | Sequence[torch.Tensor]:
    """
    Return ``pred`` (a tensor, or a deep-supervision list/tuple of tensors) as float32, so that a loss computed
    outside autocast runs in float32 (sigmoid/softmax, BCE and squared differences lose too much in float16).
    """
    if isinstance(pred, (list, tuple)):
        return type(pred)(p.float() for p in pred)
    return pred.float()


def plain_tensor(x: Any, owner: str) -> Any:
    """Return a MetaTensor as a plain ``torch.Tensor`` for ``torch.compile`` (other values unchanged)."""
    if isinstance(x, MetaTensor):
        warnings.warn(f"{owner}: MetaTensor converted to torch.Tensor for torch.compile.", stacklevel=3)
        return convert_to_tensor(x, track_meta=False)
    return x


def _extra_outputs(outputs: Mapping[str, Any] | None, owner: str) -> dict[str, Any]:
    """The extra entries of ``engine.state.output``: tensors detached, ``None`` left out."""
    if not outputs:
        return {}
    common = {k.value for k in Keys}
    extra: dict[str, Any] = {}
    for key, value in outputs.items():
        if key in common:
            raise ValueError(f"{owner}: TrainingStep.outputs may not set the CommonKeys entry {str(key)!r}.")
        if value is not None:
            extra[key] = value.detach() if isinstance(value, torch.Tensor) else value
    return extra
