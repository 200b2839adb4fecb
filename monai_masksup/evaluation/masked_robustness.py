"""Robustness of a trained segmentation network to masked (hole-corrupted) test inputs.

MaskSup (Zunair and Ben Hamza, BMVC 2022) trains with inputs corrupted by irregular holes and shows
qualitatively that its models cope with such corruptions at test time. This evaluation measures it: one
``monai.engines.SupervisedEvaluator`` of the clean inputs and one per hole-coverage bin, whose inputs are
masked by :class:`~monai_masksup.evaluation.MaskedInputBatch` with
:class:`~monai_masksup.transforms.HoleMaskGenerator` holes of that bin, all with the caller's inferer and
post-processing; foreground IoU, Dice and HD95 are reported per bin next to the clean result.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from monai.engines import SupervisedEvaluator
from monai.engines.utils import PrepareBatchDefault
from monai.inferers import Inferer
from monai.transforms import Activationsd, AsDiscreted, Compose

from monai_masksup.evaluation.masked_input_batch import MaskedInputBatch
from monai_masksup.evaluation.robustness_table import CLEAN, DEFAULT_COVERAGE_BINS, check_bins, coverage_bin_name
from monai_masksup.handlers.evaluation_metrics import EvaluationMetrics
from monai_masksup.handlers.masked_robustness_report import MaskedRobustnessReport
from monai_masksup.handlers.segmentation_metrics import segmentation_metrics
from monai_masksup.transforms import HoleMaskGenerator

__all__ = ["MaskedRobustnessEvaluation"]


class MaskedRobustnessEvaluation:
    """
    Foreground IoU, Dice and HD95 of ``network`` on clean and hole-masked test inputs, per coverage bin.

    Builds one ``SupervisedEvaluator`` for the clean inputs and one per bin (``self.evaluators``, in that order),
    each with the given inferer and post-processing, the metric handlers of
    :func:`monai_masksup.handlers.segmentation_metrics` and the shared :class:`MaskedRobustnessReport`
    (``self.report``); a bin's evaluator masks its inputs as ``image * (1 - hole) + fill_value * hole`` with
    ``HoleMaskGenerator(coverage=bin)`` masks from a CPU generator seeded with ``seed + index`` (rasterised on the
    device), so that a bin's masks depend neither on the other bins nor on the device. :meth:`run` runs them all
    (the network in eval mode without gradients, its mode restored by the evaluators) and writes the files
    ``robustness.json`` / ``.csv`` / ``.png`` and ``robustness_examples.png`` in ``output_dir``.

    Args:
        network: segmentation network.
        val_data_loader: test loader of dict batches (``"image"``, ``"label"``) in a fixed order.
        device: device of the evaluators.
        output_dir: folder of the output files.
        bins: hole-coverage bins ``(lo, hi]`` as fractions of the image.
        seed: seed of the hole masks.
        inferer: the evaluators' inferer (``SimpleInferer`` when ``None``).
        postprocessing: the evaluators' post-processing; it must leave a binarised ``"pred"``. ``None`` uses
            the MaskSup protocol ``Activationsd(sigmoid=True)`` + ``AsDiscreted(threshold=0.5)``.
        amp: evaluators' automatic mixed precision.
        fill_value: value written into the holes.
        prepare_batch: preparation of the unmasked batch, as for ``SupervisedEvaluator``.
        n_examples: images in the contact sheet, 0 for none.
        example_bin: index in ``bins`` of the masked example shown in the sheet.
        handlers: further handlers attached to every evaluator (e.g. a ``CheckpointLoader`` is not needed
            when the network is loaded once).

    Raises:
        ValueError: for bad ``bins`` or ``example_bin``.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        val_data_loader: Iterable,
        device: str | torch.device = "cpu",
        output_dir: str | os.PathLike = "./eval",
        bins: Sequence[Sequence[float]] = DEFAULT_COVERAGE_BINS,
        seed: int = 0,
        inferer: Inferer | None = None,
        postprocessing: Callable | None = None,
        amp: bool = False,
        fill_value: float = 0.0,
        prepare_batch: Callable = PrepareBatchDefault(),
        n_examples: int = 4,
        example_bin: int = -1,
        handlers: Sequence[Any] = (),
    ) -> None:
        self.logger = logging.getLogger(__name__)
        checked = check_bins(bins)
        if not -len(checked) <= example_bin < len(checked):
            raise ValueError(f"example_bin: expected an index into the {len(checked)} bins, got {example_bin}.")
        if postprocessing is None:
            postprocessing = Compose([Activationsd(keys="pred", sigmoid=True), AsDiscreted(keys="pred", threshold=0.5)])
        self.report = MaskedRobustnessReport(
            output_dir,
            n_examples=n_examples,
            example_bin=coverage_bin_name(checked[example_bin]),
            settings={"seed": seed, "fill_value": fill_value, "amp": amp},
        )
        self.masked_batches = [
            MaskedInputBatch(HoleMaskGenerator(coverage=b), seed + index, fill_value, prepare_batch)
            for index, b in enumerate(checked)
        ]
        self.evaluators: list[SupervisedEvaluator] = []
        for name, bin_range, prepare in [(CLEAN, (0.0, 0.0), prepare_batch)] + [
            (coverage_bin_name(b), b, m) for b, m in zip(checked, self.masked_batches)
        ]:
            evaluator = SupervisedEvaluator(
                device=torch.device(device),
                val_data_loader=val_data_loader,
                network=network,
                prepare_batch=prepare,
                inferer=inferer,
                postprocessing=postprocessing,
                amp=amp,
                val_handlers=[EvaluationMetrics(segmentation_metrics()), *handlers],
            )
            self.report.attach(evaluator, name, bin_range)
            self.evaluators.append(evaluator)

    def run(self) -> dict[str, Any]:
        """
        Run the clean and the masked evaluations and write the report.

        Returns:
            ``{"rows": [...], "files": {"json", "csv", "plot", "sheet"}}``; each row holds ``bin``,
            ``coverage_lo``, ``coverage_hi``, ``coverage_measured`` and the
            :func:`~monai_masksup.evaluation.summarise_per_image` keys.
        """
        for masked in self.masked_batches:
            masked.reset()
        for evaluator in self.evaluators:
            evaluator.run()
        result = self.report.write()
        for row in result["rows"]:
            means = {m: row[f"{m}_mean"] for m in ("iou", "dice", "hd95")}
            scores = " ".join(f"{m}: {value:.4f}" for m, value in means.items() if value is not None)
            self.logger.info(f"masked robustness {row['bin']} (coverage {row['coverage_measured']:.3f}) -- {scores}")
        return result
