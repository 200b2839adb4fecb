"""Robustness of a trained segmentation network to masked (hole-corrupted) test inputs.

MaskSup (Zunair and Ben Hamza, BMVC 2022) trains with inputs corrupted by irregular holes and shows
qualitatively that its models cope with such corruptions at test time. This evaluation measures it:
every test input is corrupted with :class:`~monai_masksup.transforms.HoleMaskGenerator` holes of a
given coverage bin, and foreground IoU, Dice and HD95 are reported per bin next to the clean result.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.data import MetaTensor

from monai_masksup.evaluation.contact_sheet import make_contact_sheet
from monai_masksup.evaluation.foreground_prediction import binarise_foreground, foreground_channel
from monai_masksup.evaluation.line_chart import draw_line_chart
from monai_masksup.evaluation.segmentation_report import image_names, json_safe, score_images, summarise_per_image
from monai_masksup.transforms import HoleMaskGenerator

DEFAULT_COVERAGE_BINS = ((0.0, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6))
CLEAN = "clean"
ROW_COLUMNS = (
    "bin",
    "coverage_lo",
    "coverage_hi",
    "coverage_measured",
    "n_images",
    "iou_mean",
    "iou_std",
    "dice_mean",
    "dice_std",
    "hd95_mean",
    "hd95_std",
    "hd95_excluded",
)


def coverage_bin_name(bin_range: Sequence[float]) -> str:
    """Row name of a coverage bin, e.g. ``(0.1, 0.2) -> "10-20%"``."""
    lo, hi = bin_range
    return f"{100 * lo:g}-{100 * hi:g}%"


def _check_bins(bins: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    checked = []
    for item in bins:
        if len(item) != 2 or not 0.0 <= float(item[0]) < float(item[1]) <= 1.0:
            raise ValueError(f"bins: each bin must be (lo, hi) with 0 <= lo < hi <= 1, got {tuple(item)}.")
        checked.append((float(item[0]), float(item[1])))
    if not checked:
        raise ValueError("bins: at least one coverage bin is needed.")
    return checked


def _plain(tensor: Any, name: str) -> torch.Tensor:
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"batch[{name!r}]: expected a tensor (B, C, *spatial), got {type(tensor).__name__}.")
    return tensor.as_tensor() if isinstance(tensor, MetaTensor) else tensor


def _predict(network: torch.nn.Module, images: torch.Tensor, amp: bool, threshold: float) -> torch.Tensor:
    with torch.autocast(device_type=images.device.type, enabled=amp):
        logits = network(images)
    if isinstance(logits, (list, tuple)):
        # deep-supervision networks return the full-resolution output first
        logits = logits[0]
    return binarise_foreground(logits.float(), threshold)


def _display_slice(tensor: torch.Tensor) -> torch.Tensor:
    """``(C, H, W)`` view of a channel-first 2D or 3D image (3D: the middle slice of the last axis)."""
    return tensor[..., tensor.shape[-1] // 2] if tensor.ndim == 4 else tensor


def evaluate_masked_robustness(
    network: torch.nn.Module,
    data_loader: Iterable[Mapping[str, Any]],
    device: str | torch.device = "cpu",
    output_dir: str = "./eval",
    bins: Sequence[Sequence[float]] = DEFAULT_COVERAGE_BINS,
    seed: int = 0,
    image_key: str = "image",
    label_key: str = "label",
    fill_value: float = 0.0,
    amp: bool = False,
    threshold: float = 0.5,
    spacing: float | Sequence[float] | None = None,
    n_examples: int = 4,
    example_bin: int = -1,
    json_name: str = "robustness.json",
    csv_name: str = "robustness.csv",
    plot_name: str = "robustness.png",
    sheet_name: str = "robustness_examples.png",
) -> dict[str, Any]:
    """Foreground IoU, Dice and HD95 of ``network`` on clean and hole-masked test inputs, per coverage bin.

    For every batch the clean input is segmented, then for every bin the input is corrupted as
    ``image * (1 - hole) + fill_value * hole`` with a ``HoleMaskGenerator(coverage=bin)`` mask and
    segmented again. Predictions are ``foreground probability > threshold`` (sigmoid of a 1-channel
    output, softmax channel 1 of a 2-channel output); labels are binarised with ``> 0.5``.
    The network runs in eval mode without gradients; its previous mode is restored afterwards.

    The random hole parameters come from one CPU ``torch.Generator`` per bin seeded with ``seed + index``
    (the masks are rasterised on ``device``), so a bin's masks do not depend on the other bins nor on the
    device's random state; with a data loader of fixed order the whole result is reproducible.

    Files written in ``output_dir``: ``json_name`` (``{"settings", "rows", "per_image"}``), ``csv_name``
    (one row per bin, clean first, columns ``ROW_COLUMNS``), ``plot_name`` (mean IoU and Dice against
    measured hole coverage in percent, clean at 0) and ``sheet_name`` (contact sheet of the first
    ``n_examples`` cases: image, label, prediction, masked input of ``bins[example_bin]``, its prediction).

    Args:
        network: segmentation network returning ``(B, 1 or 2, *spatial)`` logits.
        data_loader: iterable of dict batches with ``image_key`` ``(B, C, *spatial)`` and
            ``label_key`` ``(B, 1, *spatial)`` tensors, in a fixed order.
        device: device the network runs on.
        output_dir: folder of the output files, created when missing.
        bins: hole-coverage bins ``(lo, hi]`` as fractions of the image.
        seed: seed of the hole masks.
        image_key: batch key of the images.
        label_key: batch key of the labels.
        fill_value: value written into the holes.
        amp: run the network under ``torch.autocast``.
        threshold: foreground probability threshold.
        spacing: pixel spacing for HD95, ``None`` for pixels.
        n_examples: number of cases in the contact sheet, 0 for no sheet.
        example_bin: index in ``bins`` of the masked example shown in the sheet.
        json_name: JSON file name.
        csv_name: CSV file name.
        plot_name: PNG file name of the curve.
        sheet_name: PNG file name of the contact sheet.

    Returns:
        ``{"rows": [...], "files": {"json", "csv", "plot", "sheet"}}``; each row holds ``bin``,
        ``coverage_lo``, ``coverage_hi``, ``coverage_measured`` and the :func:`summarise_per_image` keys.

    Raises:
        ValueError: for bad ``bins``/``example_bin``, a batch without the keys, or an empty loader.
    """
    checked_bins = _check_bins(bins)
    if not -len(checked_bins) <= example_bin < len(checked_bins):
        raise ValueError(f"example_bin: expected an index into the {len(checked_bins)} bins, got {example_bin}.")
    device = torch.device(device)
    names = [CLEAN] + [coverage_bin_name(b) for b in checked_bins]
    generators = [HoleMaskGenerator(coverage=b) for b in checked_bins]
    rngs = [torch.Generator(device="cpu").manual_seed(seed + index) for index in range(len(checked_bins))]
    records: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    examples: list[list[torch.Tensor]] = []

    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            for batch in data_loader:
                for key in (image_key, label_key):
                    if not isinstance(batch, Mapping) or key not in batch:
                        raise ValueError(f"data_loader: every batch must be a dict with key {key!r}.")
                images = _plain(batch[image_key], image_key).to(device).float()
                labels = (foreground_channel(_plain(batch[label_key], label_key), label_key) > 0.5).float().cpu()
                count, spatial = images.shape[0], tuple(images.shape[2:])
                case_names = image_names(batch, count, image_key, start=len(records[CLEAN]))

                clean_pred = _predict(network, images, amp, threshold).cpu()
                clean_records = score_images(clean_pred, labels, case_names, spacing)
                for record in clean_records:
                    record["coverage"] = 0.0
                records[CLEAN].extend(clean_records)

                masked_examples = None
                for index, (generator, rng) in enumerate(zip(generators, rngs)):
                    hole = generator.gen(count, spatial, device=device, generator=rng)
                    masked = images * (1.0 - hole) + fill_value * hole
                    pred = _predict(network, masked, amp, threshold).cpu()
                    bin_records = score_images(pred, labels, case_names, spacing)
                    coverage = hole.reshape(count, -1).mean(dim=1).cpu()
                    for record, value in zip(bin_records, coverage):
                        record["coverage"] = float(value)
                    records[names[index + 1]].extend(bin_records)
                    if index == example_bin % len(checked_bins):
                        masked_examples = (masked.cpu(), pred)

                for case in range(min(count, n_examples - len(examples))):
                    examples.append(
                        [
                            _display_slice(images[case].cpu()),
                            _display_slice(labels[case]),
                            _display_slice(clean_pred[case]),
                            _display_slice(masked_examples[0][case]),  # type: ignore[index]
                            _display_slice(masked_examples[1][case]),  # type: ignore[index]
                        ]
                    )
    finally:
        network.train(was_training)
    if not records[CLEAN]:
        raise ValueError("data_loader: no batch was produced, nothing to evaluate.")

    rows = []
    for name, bin_range in zip(names, [(0.0, 0.0)] + checked_bins):
        bin_records = records[name]
        rows.append(
            {
                "bin": name,
                "coverage_lo": bin_range[0],
                "coverage_hi": bin_range[1],
                "coverage_measured": sum(r["coverage"] for r in bin_records) / len(bin_records),
                **summarise_per_image(bin_records),
            }
        )

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": out / json_name, "csv": out / csv_name, "plot": out / plot_name}
    settings = {
        "bins": [list(b) for b in checked_bins],
        "seed": seed,
        "fill_value": fill_value,
        "threshold": threshold,
        "amp": amp,
    }
    with open(files["json"], "w", encoding="utf-8") as f:
        json.dump(json_safe({"settings": settings, "rows": rows, "per_image": records}), f, indent=2, allow_nan=False)
    with open(files["csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(ROW_COLUMNS)
        for row in rows:
            writer.writerow(["" if row[c] is None else row[c] for c in ROW_COLUMNS])
    draw_line_chart(
        [100.0 * row["coverage_measured"] for row in rows],
        {"IoU": [row["iou_mean"] for row in rows], "Dice": [row["dice_mean"] for row in rows]},
        files["plot"],
        title="Robustness to masked inputs",
        x_label="hole coverage (% of image)",
        y_label="mean score",
    )
    if examples:
        files["sheet"] = out / sheet_name
        example_title = f"masked {coverage_bin_name(checked_bins[example_bin])}"
        make_contact_sheet(
            examples,
            files["sheet"],
            column_titles=["image", "label", "prediction", example_title, "its prediction"],
        )
    return {"rows": rows, "files": {key: str(path) for key, path in files.items()}}
