"""Collects the per-bin results of the masked-input robustness evaluation and writes its table, chart and sheet."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from monai.utils import IgniteInfo, convert_to_tensor, min_version, optional_import

from monai_masksup.evaluation.contact_sheet import make_contact_sheet
from monai_masksup.evaluation.robustness_table import CLEAN, robustness_row, write_robustness_table
from monai_masksup.evaluation.segmentation_report import REPORT_METRICS, image_meta, image_name, per_image_records
from monai_masksup.keys import PluginKeys

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["MaskedRobustnessReport"]


def _display_slice(tensor: Any) -> torch.Tensor:
    """``(C, H, W)`` CPU view of a channel-first 2D or 3D image (3D: the middle slice of the last axis)."""
    tensor = convert_to_tensor(tensor, track_meta=False).detach().cpu()
    return tensor[..., tensor.shape[-1] // 2] if tensor.ndim == 4 else tensor


class MaskedRobustnessReport:
    """
    The report of the masked-input robustness evaluation (see
    :class:`monai_masksup.evaluation.MaskedRobustnessEvaluation`). Attach it to one evaluator per coverage bin,
    each with :class:`monai_masksup.evaluation.MaskedInputBatch` as ``prepare_batch`` and the metric handlers of
    :func:`monai_masksup.handlers.segmentation_metrics` (``save_details=True``), and to one evaluator of the
    unmasked inputs named ``"clean"``. At the end of each evaluator's run it turns the per-image metric values
    into records (with the image name and the measured hole coverage, the mean of the stored mask) and a table
    row; :meth:`write` writes the table (``robustness.json``, ``.csv``, ``.png``, see
    :func:`monai_masksup.evaluation.write_robustness_table`) and a contact sheet of the first ``n_examples``
    images: image, label, prediction, the masked input of ``example_bin`` and its prediction.

    Runs in one process: file names and coverages are not gathered across ranks.

    Args:
        output_dir: folder of the files.
        metric_details: report column -> metric name in ``engine.state.metric_details``; ``None`` for the
            columns ``iou``, ``dice``, ``hd95`` under their own names.
        image_key: output and batch key of the (masked) input; its meta data names the images.
        label_key: output key of the label.
        pred_key: output key of the post-processed prediction.
        mask_key: batch key of the masks stored by ``MaskedInputBatch``; a batch without it has coverage 0.
        n_examples: images in the contact sheet, 0 for no sheet.
        example_bin: name of the bin whose masked inputs the sheet shows; ``None`` for the last bin attached.
        settings: the evaluation's settings, stored in the JSON file.
        json_name: JSON file name.
        csv_name: CSV file name.
        plot_name: file name of the chart.
        sheet_name: file name of the contact sheet.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        metric_details: Mapping[str, str] | None = None,
        image_key: str = "image",
        label_key: str = "label",
        pred_key: str = "pred",
        mask_key: str = PluginKeys.HOLE_MASK,
        n_examples: int = 4,
        example_bin: str | None = None,
        settings: Mapping[str, Any] | None = None,
        json_name: str = "robustness.json",
        csv_name: str = "robustness.csv",
        plot_name: str = "robustness.png",
        sheet_name: str = "robustness_examples.png",
    ) -> None:
        self.output_dir = Path(output_dir)
        self.columns = dict(metric_details) if metric_details is not None else {m: m for m in REPORT_METRICS}
        self.image_key, self.label_key, self.pred_key, self.mask_key = image_key, label_key, pred_key, mask_key
        self.n_examples = int(n_examples)
        self.example_bin = example_bin
        self.settings = dict(settings or {})
        self.file_names = {"json": json_name, "csv": csv_name, "plot": plot_name, "sheet": sheet_name}
        self.rows: dict[str, dict[str, Any]] = {}
        self.per_image: dict[str, list[dict[str, Any]]] = {}
        self.examples: dict[str, list[dict[str, torch.Tensor]]] = {}
        self._bins: dict[str, tuple[float, float]] = {}

    def attach(self, engine: Engine, bin_name: str = CLEAN, coverage_bin: Sequence[float] = (0.0, 0.0)) -> None:
        """
        Collect the results of ``engine``'s runs as the row ``bin_name``.

        Args:
            engine: an evaluator of one coverage bin (or of the clean inputs).
            bin_name: row name.
            coverage_bin: ``(lo, hi)`` of the bin, ``(0, 0)`` for the clean inputs.
        """
        self._bins[bin_name] = (float(coverage_bin[0]), float(coverage_bin[1]))
        names: list[str] = []
        coverages: list[float] = []
        meta_of = image_meta(self.image_key)

        def started(_engine: Engine) -> None:
            names.clear()
            coverages.clear()
            self.examples[bin_name] = []

        def collect(engine: Engine) -> None:
            batch = engine.state.batch
            items = batch if isinstance(batch, list) else [batch]
            for meta in meta_of(items):
                filename = meta.get("filename_or_obj") if isinstance(meta, Mapping) else None
                names.append(image_name(filename, len(names)))
            for item in items:
                mask = item.get(self.mask_key) if isinstance(item, Mapping) else None
                coverage = 0.0 if mask is None else convert_to_tensor(mask, track_meta=False).float().mean()
                coverages.append(float(coverage))
            output = engine.state.output if isinstance(engine.state.output, list) else []
            examples = self.examples[bin_name]
            for item in output[: max(0, self.n_examples - len(examples))]:
                examples.append({key: _display_slice(item[key]) for key in (self.image_key, self.label_key, self.pred_key)})

        def completed(engine: Engine) -> None:
            details = getattr(engine.state, "metric_details", {})
            missing = [name for name in self.columns.values() if name not in details]
            if missing:
                raise ValueError(
                    f"MaskedRobustnessReport: no per-image values of {missing} for bin {bin_name!r}; attach "
                    "monai_masksup.handlers.segmentation_metrics() (save_details=True) before this report."
                )
            records = per_image_records({c: details[n] for c, n in self.columns.items()}, names)
            for record, coverage in zip(records, coverages):
                record["coverage"] = coverage
            self.per_image[bin_name] = records
            self.rows[bin_name] = robustness_row(bin_name, self._bins[bin_name], records, list(self.columns))

        engine.add_event_handler(Events.EPOCH_STARTED, started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, completed)

    def write(self) -> dict[str, Any]:
        """
        Write the table, the chart and the contact sheet of the rows collected so far (clean first).

        Returns:
            ``{"rows": [...], "files": {"json", "csv", "plot", "sheet"}}``.

        Raises:
            ValueError: when no run has completed.
        """
        if not self.rows:
            raise ValueError("MaskedRobustnessReport: no evaluator run has completed, nothing to write.")
        order = sorted(self.rows, key=lambda name: name != CLEAN)
        rows = [self.rows[name] for name in order]
        files = write_robustness_table(
            self.output_dir,
            rows,
            {name: self.per_image[name] for name in order},
            {"bins": [list(self._bins[name]) for name in order if name != CLEAN], **self.settings},
            self.file_names["json"],
            self.file_names["csv"],
            self.file_names["plot"],
        )
        masked = [name for name in order if name != CLEAN]
        example_bin = self.example_bin if self.example_bin is not None else (masked[-1] if masked else None)
        clean, chosen = self.examples.get(CLEAN, []), self.examples.get(example_bin, []) if example_bin else []
        count = min(len(clean), len(chosen))
        if self.n_examples > 0 and count > 0:
            i, y, p = self.image_key, self.label_key, self.pred_key
            files["sheet"] = make_contact_sheet(
                [[clean[k][i], clean[k][y], clean[k][p], chosen[k][i], chosen[k][p]] for k in range(count)],
                self.output_dir / self.file_names["sheet"],
                column_titles=["image", "label", "prediction", f"masked {example_bin}", "its prediction"],
            )
        return {"rows": rows, "files": {key: str(path) for key, path in files.items()}}
