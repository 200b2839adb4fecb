"""Semi-supervised segmentation training: a mean teacher with CutMix / Cutout / hole-mask / plain perturbations."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Events
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

from monai_masksup.engines.extra_state import GeneratorState
from monai_masksup.engines.multi_pass_trainer import (
    MultiPassTrainer,
    TrainingBatch,
    TrainingStep,
    first_output,
    plain_tensor,
    to_float32,
)
from monai_masksup.engines.unlabeled_stream import UnlabeledStream, passes_per_epoch
from monai_masksup.keys import PluginKeys
from monai_masksup.losses.components import LossComponents
from monai_masksup.losses.consistency import ConsistencyLoss
from monai_masksup.losses.mask_mix import mix_with_mask
from monai_masksup.networks.ema_teacher import EMATeacher, unwrap_network
from monai_masksup.transforms.apply_mask import apply_mask

__all__ = ["SemiSupervisedTrainer", "PERTURBATIONS", "PAIRED_PERTURBATIONS", "sigmoid_rampup"]

#: the student's perturbations of the unlabelled images
PERTURBATIONS = ("cutmix", "cutout", "hole_cutout", "mean_teacher", "ict", "vat")

#: the perturbations that draw two unlabelled batches per iteration
PAIRED_PERTURBATIONS = ("cutmix", "ict")

#: name of the seeded mask generator in :meth:`SemiSupervisedTrainer.extra_state`
MASK_RNG_STATE = "mask_rng"


def sigmoid_rampup(current: float, length: float) -> float:
    """
    The mean teacher's sigmoid ramp-up ``exp(-5 (1 - t/T)^2)`` with ``t`` clipped to ``[0, T]``; 1 when ``T <= 0``.

    Args:
        current: ``t``, here the 0-based epoch index.
        length: ``T``, the ramp-up length in the same unit.
    """
    if length <= 0:
        return 1.0
    phase = 1.0 - min(max(float(current), 0.0), float(length)) / float(length)
    return math.exp(-5.0 * phase * phase)


class SemiSupervisedTrainer(MultiPassTrainer):
    """
    Semi-supervised segmentation with a mean teacher: every iteration a labelled batch gives the supervised loss
    and unlabelled batches give a consistency loss between the student (the trained ``network``) on perturbed
    images and an :class:`~monai_masksup.networks.EMATeacher` on the unperturbed ones.

    G. French, S. Laine, T. Aila, M. Mackiewicz, G. Finlayson, "Semi-supervised semantic segmentation needs strong,
    varied perturbations", BMVC 2020 (reference implementation ``Britefury/cutmix-semisup-seg``).

    Its :meth:`compute_loss` (the rest of the iteration, events and AMP included, is :class:`MultiPassTrainer`'s):

    1. **Supervised**: ``loss_function(pred, label)`` on the labelled batch, any MONAI loss. With a MaskSup loss
       (``masksup_mask_generator`` given, or ``loss_function`` a :class:`~monai_masksup.losses.MaskSupLoss`) the
       labelled image also goes through MaskSup's context branch with hole masks and the call is
       ``loss_function(pred, pred_masked, label)``, so MaskSup and the mean teacher combine.
    2. **Unlabelled**, by ``perturbation``:

       - ``"cutmix"``: two unlabelled batches ``x_a``, ``x_b`` (from ``unlabeled_data_loader`` and
         ``unlabeled_data_loader_b``, or two consecutive batches of the first); box masks ``M`` (area 0.5, one box,
         1 inside the box, as the reference) from ``batch_a[box_mask_key]`` when ``RandBoxMaskd`` wrote them, else
         drawn on the device by ``box_mask_generator``; the student sees ``mix_with_mask(x_a, x_b, M)``, the
         teacher sees ``x_a`` and ``x_b`` and its logits are mixed with the same ``M`` (before the softmax, as
         the reference). Loss mask: none (all pixels valid).
       - ``"cutout"``: the student sees ``x · M`` with ``M`` a box of area ``U(0, 1)`` (kept region 1), the teacher
         the uncut ``x``; loss mask ``M``.
       - ``"hole_cutout"`` (ours, beyond the paper): the student sees ``x`` with ``hole_mask_generator``'s
         irregular holes filled with ``fill_value``; loss mask ``1 − holes`` (the visible pixels, as Cutout).
       - ``"mean_teacher"`` (the baseline): the student sees ``flip(x + N(0, noise_std²))`` with a random flip of
         the last spatial axis per sample (probability 0.5), and its logits are flipped back before the loss.
       - ``"ict"`` (interpolation consistency, Verma et al., IJCAI 2019, adapted to segmentation as in French et
         al.'s supplement): two unlabelled batches as CutMix; the student sees ``λ x_a + (1 − λ) x_b`` with
         ``λ ~ Beta(ict_alpha, ict_alpha)`` per sample, the target is the same mix of the teacher's
         **probabilities** (passed to the consistency loss as their logits, ``log p``, or ``logit p`` for one
         channel, so that its softmax gives the mixed probabilities back).
       - ``"vat"`` (virtual adversarial training, Miyato et al., TPAMI 2019): the student sees ``x + r_adv``,
         ``r_adv`` of root-mean-square ``vat_epsilon`` per element along the gradient, at ``x + d`` (``d``
         random, of root-mean-square ``vat_xi``), of the KL divergence between the student and the teacher on ``x`` (one power
         iteration; the probing forward runs the unwrapped student with frozen BatchNorm statistics and adds no
         parameter gradient). The target is the teacher on ``x``.
         ICT and VAT have no reference vectors: their tests pin their properties.

    3. ``consistency_loss(student_logits, teacher_logits, loss_mask)``: a
       :class:`~monai_masksup.losses.ConsistencyLoss`, by default ``"var"`` with the reference's confidence
       threshold 0.97 (the loss scaled by the share of confident teacher pixels).
    4. ``loss = supervised + consistency_weight · ramp · consistency``, ``ramp = sigmoid_rampup(epoch − 1,
       rampup_epochs)`` (1 without a ramp-up), ``t`` the 0-based epoch as in the reference. **Ramp-up and
       threshold**: the reference's training loop (``train_seg_semisup_mask_mt.py``) multiplies the consistency
       loss by the ramp whenever a ramp-up is set, whatever the threshold; only its *logged* rate switches from the
       confidence share to the ramp value when the threshold is 0. This class follows the code, so both together
       multiply: the confidence share already keeps the early loss small (an untrained teacher is rarely
       confident), the ramp delays it further. The usual choice is one or the other: the threshold (default), or
       ``rampup_epochs`` with ``ConsistencyLoss(..., confidence_threshold=0)``.
    5. The teacher updates after every real optimizer step (``TrainerEvents.OPTIMIZER_STEPPED``) and is the
       engine's extra state ``"ema_teacher"`` (so ``TrainingCheckpoint`` saves it); the seeded mask generator is
       ``"mask_rng"``.

    Epochs: ``epoch_length`` iterations, by default as the reference one pass over the unlabelled loader (its
    length, halved for CutMix / ICT drawing both batches from one loader), so that 10 % labels do not make an epoch (and
    validation) ten times as frequent. The labelled loader is the engine's own and Ignite restarts it when it is
    exhausted; the unlabelled loaders cycle independently (:class:`UnlabeledStream`) and start a fresh pass at
    every epoch, with ``set_epoch`` on their ``DistributedSampler`` under DDP (the labelled sampler gets MONAI's
    per-epoch ``set_epoch``). A resumed run repeats an uninterrupted one exactly when ``epoch_length`` is a
    multiple of the labelled loader's length (Ignite continues a labelled pass across epochs otherwise).

    ``engine.state.output``: the ``CommonKeys`` (``PRED`` = the student on the labelled image), the loss terms
    as floats (``PluginKeys.LOSS_SUPERVISED``, ``PluginKeys.LOSS_CONSISTENCY``, ``PluginKeys.LOSS_CONFIDENCE_RATE``,
    ``PluginKeys.LOSS_CONSISTENCY_WEIGHT`` = weight · ramp, and a MaskSup loss's terms), and for the unlabelled part
    ``PluginKeys.IMAGE_MASKED`` (the student's input), ``PluginKeys.PRED_MASKED`` (the student's logits on it,
    flipped back for ``"mean_teacher"``) and ``PluginKeys.HOLE_MASK`` (the box or hole mask, 1 = box / hole).

    Args:
        device, max_epochs: as in ``monai.engines.SupervisedTrainer``.
        train_data_loader: the labelled data.
        network: the student; may be wrapped in ``DistributedDataParallel``.
        optimizer: the student's optimizer.
        loss_function: the supervised loss ``(pred, label)``, or a MaskSup loss ``(pred, pred_masked, label)``.
        unlabeled_data_loader: the unlabelled data (dictionaries with ``"image"``; a label, if present, is unused).
        unlabeled_data_loader_b: the second unlabelled loader of CutMix and ICT (e.g. the same data set, shuffled
            separately); without it both batches come from ``unlabeled_data_loader``.
        perturbation: one of ``"cutmix"`` (default), ``"cutout"``, ``"hole_cutout"``, ``"mean_teacher"``,
            ``"ict"``, ``"vat"``.
        teacher: an :class:`EMATeacher` of ``network`` not attached elsewhere; default
            ``EMATeacher(network, teacher_alpha, mode=teacher_mode)``. It is attached to this engine.
        teacher_alpha: the teacher's EMA decay (0.99, the reference's).
        teacher_mode: the teacher's module mode, ``"train"`` (the reference) or ``"eval"``.
        consistency_loss: default ``ConsistencyLoss("var", confidence_threshold=0.97)``.
        consistency_weight: the weight of the consistency loss (1, the reference's).
        rampup_epochs: length ``T`` of the sigmoid ramp-up in epochs; ``None`` or ``<= 0``: no ramp-up (the
            reference's default).
        box_mask_generator: CutMix/Cutout box masks ``(B, spatial, device, generator) -> (B, 1, *spatial)``;
            default ``BoxMaskGenerator(0.5)`` for CutMix, ``BoxMaskGenerator((0, 1))`` for Cutout.
        box_mask_key: key of batch-provided box masks ``(B, 1, *spatial)`` (``RandBoxMaskd``'s ``mask_key``).
        hole_mask_generator: the holes of ``"hole_cutout"``; default ``HoleMaskGenerator("high")``.
        masksup_mask_generator: the holes of MaskSup's context branch on the labelled image; default
            ``HoleMaskGenerator("high")`` when ``loss_function`` is a ``MaskSupLoss``, else no context branch.
        fill_value: intensity written into the holes (both hole kinds).
        noise_std: standard deviation of the ``"mean_teacher"`` intensity noise.
        ict_alpha: the ``Beta(α, α)`` parameter of ICT's mixing weights (1: uniform, as ICT on CIFAR-10).
        vat_epsilon: the root-mean-square per input element of VAT's perturbation (the L2 norm ``ε √n`` of a
            sample of ``n`` elements, so that it does not depend on the image size).
        vat_xi: the root-mean-square per element of VAT's probing perturbation. VAT's ξ = 1e-6 is an L2 norm
            of a whole image; here, per element, it would vanish in float32 rounding next to pixel values
            around 1, where the gradient of the divergence is zero, so the default is 1e-3.
        mask_seed: seed of a CPU ``torch.Generator`` of all the masks, flips and noise (offset by the rank under
            ``torch.distributed``), registered as extra state ``"mask_rng"``; ``None``: the global random state.
        epoch_length: iterations per epoch; see above for the default.
        kwargs: the other arguments of :class:`MultiPassTrainer` by keyword (``amp``, ``train_handlers``, ...).

    Raises:
        ValueError: for an unknown ``perturbation`` or ``teacher_mode``, an epoch length that cannot be derived, a
            negative ``consistency_weight`` / ``noise_std`` / ``vat_epsilon`` / ``vat_xi``, or ``ict_alpha <= 0``.
        TypeError: when ``loss_function`` or a mask generator is not callable, or ``teacher`` is not an
            ``EMATeacher``.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        network: torch.nn.Module,
        optimizer: Optimizer,
        loss_function: Callable,
        *,
        unlabeled_data_loader: Iterable | DataLoader,
        unlabeled_data_loader_b: Iterable | DataLoader | None = None,
        perturbation: str = "cutmix",
        teacher: EMATeacher | None = None,
        teacher_alpha: float = 0.99,
        teacher_mode: str = "train",
        consistency_loss: Callable | None = None,
        consistency_weight: float = 1.0,
        rampup_epochs: float | None = None,
        box_mask_generator: Callable | None = None,
        box_mask_key: str = PluginKeys.BOX_MASK,
        hole_mask_generator: Callable | None = None,
        masksup_mask_generator: Callable | None = None,
        fill_value: float = 0.0,
        noise_std: float = 0.1,
        ict_alpha: float = 1.0,
        vat_epsilon: float = 0.05,
        vat_xi: float = 1e-3,
        mask_seed: int | None = None,
        epoch_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        name = type(self).__name__
        if perturbation not in PERTURBATIONS:
            raise ValueError(f"{name}: `perturbation` must be one of {PERTURBATIONS}, got {perturbation!r}.")
        if not callable(loss_function):
            raise TypeError(f"{name}: `loss_function` must be callable, got {type(loss_function).__name__}.")
        if min(float(consistency_weight), float(noise_std), float(vat_epsilon), float(vat_xi)) < 0:
            raise ValueError(f"{name}: `consistency_weight`, `noise_std`, `vat_epsilon` and `vat_xi` must be >= 0.")
        if float(ict_alpha) <= 0:
            raise ValueError(f"{name}: `ict_alpha` must be > 0, got {ict_alpha}.")
        paired = perturbation in PAIRED_PERTURBATIONS
        draws_per_iteration = 2 if paired and unlabeled_data_loader_b is None else 1
        if epoch_length is None:
            epoch_length = _default_epoch_length(unlabeled_data_loader, draws_per_iteration, name)
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            network=network,
            optimizer=optimizer,
            loss_function=loss_function,
            epoch_length=epoch_length,
            **kwargs,
        )
        self.perturbation = perturbation
        passes = passes_per_epoch(unlabeled_data_loader, int(epoch_length) * draws_per_iteration)
        stride = 2 if unlabeled_data_loader_b is not None else 1
        self.unlabeled = UnlabeledStream(unlabeled_data_loader, "unlabeled_data_loader", passes, stride, 0)
        self.unlabeled_b = (
            None
            if unlabeled_data_loader_b is None
            else UnlabeledStream(
                unlabeled_data_loader_b,
                "unlabeled_data_loader_b",
                passes_per_epoch(unlabeled_data_loader_b, int(epoch_length)),
                stride,
                1,
            )
        )
        self.add_event_handler(Events.EPOCH_STARTED, self._start_unlabeled_epoch)

        if teacher is None:
            teacher = EMATeacher(network, alpha=teacher_alpha, mode=teacher_mode)
        if not isinstance(teacher, EMATeacher):
            raise TypeError(f"{name}: `teacher` must be an EMATeacher, got {type(teacher).__name__}.")
        self.teacher = teacher
        teacher.attach(self)

        self.consistency_loss = (
            ConsistencyLoss("var", confidence_threshold=0.97) if consistency_loss is None else consistency_loss
        )
        if not callable(self.consistency_loss):
            raise TypeError(f"{name}: `consistency_loss` must be callable.")
        self.consistency_weight = float(consistency_weight)
        self.rampup_epochs = None if rampup_epochs is None else float(rampup_epochs)

        from monai_masksup.losses import MaskSupLoss
        from monai_masksup.transforms import BoxMaskGenerator, HoleMaskGenerator

        if box_mask_generator is None:
            box_mask_generator = BoxMaskGenerator(prop_range=(0.0, 1.0) if perturbation == "cutout" else 0.5)
        if hole_mask_generator is None and perturbation == "hole_cutout":
            hole_mask_generator = HoleMaskGenerator("high")
        if masksup_mask_generator is None and isinstance(loss_function, MaskSupLoss):
            masksup_mask_generator = HoleMaskGenerator("high")
        for arg, value in (
            ("box_mask_generator", box_mask_generator),
            ("hole_mask_generator", hole_mask_generator),
            ("masksup_mask_generator", masksup_mask_generator),
        ):
            if value is not None and not callable(value):
                raise TypeError(f"{name}: `{arg}` must be callable, got {type(value).__name__}.")
        self.box_mask_generator = box_mask_generator
        self.box_mask_key = box_mask_key
        self.hole_mask_generator = hole_mask_generator
        self.masksup_mask_generator = masksup_mask_generator
        self.fill_value = float(fill_value)
        self.noise_std = float(noise_std)
        self.ict_alpha = float(ict_alpha)
        self.vat_epsilon = float(vat_epsilon)
        self.vat_xi = float(vat_xi)
        # the divergence whose gradient gives VAT's adversarial direction: no confidence gate, which could zero it
        self._vat_divergence = ConsistencyLoss("kld")

        self._mask_rng: torch.Generator | None = None
        if mask_seed is not None:
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
            self._mask_rng = torch.Generator(device="cpu").manual_seed(int(mask_seed) + rank)
            self.register_extra_state(MASK_RNG_STATE, GeneratorState(self._mask_rng))

    def mask_rng(self) -> torch.Generator | None:
        """The seeded CPU generator of masks, flips and noise, or ``None`` (global random state)."""
        return self._mask_rng

    def consistency_scale(self) -> float:
        """``consistency_weight · sigmoid_rampup(epoch − 1, rampup_epochs)`` for the current epoch."""
        ramp = 1.0 if not self.rampup_epochs else sigmoid_rampup(self.state.epoch - 1, self.rampup_epochs)
        return self.consistency_weight * ramp

    def _start_unlabeled_epoch(self, engine: SemiSupervisedTrainer) -> None:
        for stream in (self.unlabeled, self.unlabeled_b):
            if stream is not None:
                stream.start_epoch(engine.state.epoch)

    def compute_loss(self, batch: TrainingBatch) -> TrainingStep:
        """
        The supervised loss of the labelled batch plus the weighted consistency loss of the unlabelled batches.

        Args:
            batch: the prepared labelled batch.

        Returns:
            ``TrainingStep`` with the student's labelled prediction as ``pred``, the unlabelled student input, its
            prediction and mask as outputs, and the loss terms as components.
        """
        pred, supervised = self._supervised(batch)
        student_input, mask, student_logits, teacher_logits, loss_mask = self._unlabeled()
        consistency = self.consistency_loss(student_logits, teacher_logits, loss_mask)
        scale = self.consistency_scale()
        components: dict[str, Any] = {"supervised": supervised.detach()}
        terms = self.consistency_loss.loss_components() if isinstance(self.consistency_loss, LossComponents) else {}
        components.update(terms or {"consistency": consistency.detach()})
        components["consistency_weight"] = scale
        outputs = {
            PluginKeys.IMAGE_MASKED: student_input,
            PluginKeys.PRED_MASKED: student_logits,
            PluginKeys.HOLE_MASK: mask,
        }
        return TrainingStep(supervised + scale * consistency, pred, outputs, components)

    def _supervised(self, batch: TrainingBatch) -> tuple[Any, torch.Tensor]:
        """The student's prediction on the labelled image and the supervised loss (MaskSup's when configured)."""
        pred = self.forward(batch.inputs, *batch.args, **batch.kwargs)
        if self.masksup_mask_generator is None:
            return pred, self.loss_function(to_float32(pred), batch.targets)
        holes = self._draw(self.masksup_mask_generator, batch.inputs)
        masked = apply_mask(batch.inputs, holes, self.fill_value, batched=True)
        pred_masked = self.forward(masked, *batch.args, **batch.kwargs)
        return pred, self.loss_function(to_float32(pred), to_float32(pred_masked), batch.targets)

    def _unlabeled(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Return ``(student_input, mask, student_logits, teacher_logits, loss_mask)`` of the perturbation."""
        first = self.prepare(self.unlabeled.next())
        x = first.inputs
        if self.perturbation in PAIRED_PERTURBATIONS:
            second_stream = self.unlabeled if self.unlabeled_b is None else self.unlabeled_b
            x_b = self.prepare(second_stream.next()).inputs
            if x_b.shape != x.shape:
                raise ValueError(
                    f"{type(self).__name__}: the two unlabelled batches differ in shape: {tuple(x.shape)} "
                    f"and {tuple(x_b.shape)} (use drop_last=True or equal batch sizes)."
                )
        if self.perturbation == "ict":
            return self._ict(x, x_b)
        if self.perturbation == "vat":
            return self._vat(x)
        if self.perturbation == "cutmix":
            mask = self._box_mask(first)
            student_input = mix_with_mask(x, x_b, mask)
            teacher_logits = mix_with_mask(self._teacher(x), self._teacher(x_b), mask)
            return student_input, mask, self._student(student_input), teacher_logits, None
        if self.perturbation == "cutout":
            mask = self._box_mask(first)
            student_input = x * mask.to(x.dtype)
            return student_input, mask, self._student(student_input), self._teacher(x), mask
        if self.perturbation == "hole_cutout":
            holes = self._draw(self.hole_mask_generator, x)
            student_input = apply_mask(x, holes, self.fill_value, batched=True)
            return student_input, holes, self._student(student_input), self._teacher(x), 1.0 - holes
        flip = self._uniform((x.shape[0],), x.device) < 0.5
        noise = torch.randn(x.shape, generator=self._mask_rng, dtype=torch.float32).to(x.device, x.dtype)
        student_input = _flip_last_axis(x + self.noise_std * noise, flip)
        student_logits = _flip_last_axis(self._student(student_input), flip)
        return student_input, None, student_logits, self._teacher(x), None

    def _ict(self, x_a: torch.Tensor, x_b: torch.Tensor) -> tuple:
        """ICT: the student on ``λ x_a + (1 − λ) x_b``, the target the same mix of the teacher's probabilities."""
        keep_b = 1.0 - self._beta((x_a.shape[0],)).to(x_a.device)
        weight = keep_b.reshape(-1, *([1] * (x_a.ndim - 1)))
        student_input = mix_with_mask(x_a, x_b, weight.to(x_a.dtype))
        prob = mix_with_mask(_probabilities(self._teacher(x_a)), _probabilities(self._teacher(x_b)), weight)
        return student_input, None, self._student(student_input), _logits_of(prob), None

    def _vat(self, x: torch.Tensor) -> tuple:
        """VAT: the student on ``x + r_adv``, ``r_adv`` the direction that most changes its prediction."""
        teacher_logits = self._teacher(x)
        direction = torch.randn(x.shape, generator=self._mask_rng, dtype=torch.float32).to(x.device, x.dtype)
        rms_to_norm = math.sqrt(x[0].numel())
        probe = (self.vat_xi * rms_to_norm * _unit_per_sample(direction)).requires_grad_(True)
        plain = unwrap_network(self.network)
        with _FrozenBatchNormStatistics(plain), torch.enable_grad():
            with self.autocast():
                probe_logits = to_float32(first_output(self.inferer(x + probe, plain)))
            divergence = self._vat_divergence(probe_logits, teacher_logits)
            (grad,) = torch.autograd.grad(divergence, probe)
        student_input = x + self.vat_epsilon * rms_to_norm * _unit_per_sample(grad.detach()).to(x.dtype)
        return student_input, None, self._student(student_input), teacher_logits, None

    def _beta(self, shape: tuple[int, ...]) -> torch.Tensor:
        """``Beta(ict_alpha, ict_alpha)`` draws from the seeded generator (torch's Beta takes no generator)."""
        if self._mask_rng is None:
            return torch.distributions.Beta(self.ict_alpha, self.ict_alpha).sample(shape)
        seed = int(torch.randint(0, 2**62, (1,), generator=self._mask_rng))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return torch.distributions.Beta(self.ict_alpha, self.ict_alpha).sample(shape)

    def _student(self, x: torch.Tensor) -> torch.Tensor:
        return to_float32(first_output(self.forward(x)))

    def _teacher(self, x: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return to_float32(first_output(self.teacher(x)))

    def _box_mask(self, batch: TrainingBatch) -> torch.Tensor:
        """The batch's box masks when ``RandBoxMaskd`` wrote them, else drawn on the image's device."""
        x = batch.inputs
        data = batch.data
        if isinstance(data, dict) and self.box_mask_key in data:
            mask = torch.as_tensor(data[self.box_mask_key])
            expected = (x.shape[0], 1, *x.shape[2:])
            if tuple(mask.shape) != expected:
                raise ValueError(
                    f"{type(self).__name__}: batch[{self.box_mask_key!r}] has shape {tuple(mask.shape)}, expected "
                    f"{expected} for the unlabelled images."
                )
            mask = mask.to(device=x.device, dtype=torch.float32, non_blocking=self.non_blocking)
            return plain_tensor(mask, type(self).__name__) if self.compile else mask
        return self._draw(self.box_mask_generator, x)

    def _draw(self, generator: Callable, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, *spatial)`` float masks from a mask generator, on ``x``'s device, with the seeded generator."""
        mask = generator(x.shape[0], tuple(x.shape[2:]), device=x.device, generator=self._mask_rng)
        dtype = x.dtype if x.is_floating_point() else torch.float32
        return torch.as_tensor(mask).to(device=x.device, dtype=dtype)

    def _uniform(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        return torch.rand(shape, generator=self._mask_rng).to(device)


def _probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the channels; one channel is binary, its probability ``σ(z)``."""
    return torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)


def _logits_of(prob: torch.Tensor) -> torch.Tensor:
    """Logits whose :func:`_probabilities` are ``prob``: ``log p`` (softmax), ``log(p / (1 − p))`` (one channel)."""
    tiny = torch.finfo(prob.dtype).tiny
    if prob.shape[1] == 1:
        return torch.log(prob.clamp_min(tiny)) - torch.log((1.0 - prob).clamp_min(tiny))
    return torch.log(prob.clamp_min(tiny))


def _unit_per_sample(x: torch.Tensor) -> torch.Tensor:
    """``x`` divided by the L2 norm of each sample (a zero sample stays zero)."""
    norm = x.flatten(1).norm(dim=1).clamp_min(1e-12)
    return x / norm.reshape(-1, *([1] * (x.ndim - 1)))


class _FrozenBatchNormStatistics:
    """Within the context, BatchNorm layers in train mode normalise with the batch statistics but do not update
    their running statistics (VAT's probing forward must not count as a batch)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.layers = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        self.saved: list[bool] = []

    def __enter__(self) -> None:
        self.saved = [m.track_running_stats for m in self.layers]
        for m in self.layers:
            m.track_running_stats = False

    def __exit__(self, *exc: object) -> None:
        for m, tracked in zip(self.layers, self.saved):
            m.track_running_stats = tracked


def _flip_last_axis(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Flip the samples of ``x`` selected by the boolean ``flip`` (B,) along the last spatial axis."""
    where = flip.reshape(-1, *([1] * (x.ndim - 1)))
    return torch.where(where, x.flip(-1), x)


def _default_epoch_length(loader: Iterable, draws_per_iteration: int, owner: str) -> int:
    """One pass over the unlabelled loader: its length divided by the batches drawn from it per iteration."""
    try:
        length = len(loader)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(
            f"{owner}: `unlabeled_data_loader` has no length, so `epoch_length` must be given."
        ) from None
    if length < 1:
        raise ValueError(f"{owner}: `unlabeled_data_loader` is empty.")
    return max(1, length // draws_per_iteration)
