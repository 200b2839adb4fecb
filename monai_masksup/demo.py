"""End-to-end MaskSup demo: ``python -m monai_masksup.demo``.

Generates a small synthetic GLaS data set in the Warwick layout (when absent), then runs the GLaS bundle
(``bundles/masksup_glas``) exactly as a user would, through ``monai.bundle.run`` with the bundle's own
``train.json``, ``evaluate.json`` and ``inference.json``, plus the ``demo.json`` overlay (a small BasicUNet
at 64x64 instead of LeViT-UNet-384 at 224x224, a few epochs) so that everything finishes in a few minutes
on a laptop CPU. Prints where the checkpoints, TensorBoard logs, evaluation report, robustness plot and
predicted masks are.

The numbers it prints come from synthetic images and a tiny network: they show that the pipeline works,
not how well MaskSup segments glands.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["DEFAULT_BUNDLE_DIR", "run_demo", "main"]

#: the GLaS bundle of a source checkout (``<repo>/bundles/masksup_glas``).
DEFAULT_BUNDLE_DIR = Path(__file__).resolve().parents[1] / "bundles" / "masksup_glas"


def _bundle_run(bundle_dir: Path, configs: Sequence[str], **overrides) -> None:
    """Run one bundle workflow in-process, as ``python -m monai.bundle run`` does."""
    from monai.bundle import run

    run(
        config_file=[str(bundle_dir / "configs" / name) for name in configs],
        meta_file=str(bundle_dir / "configs" / "metadata.json"),
        logging_file=str(bundle_dir / "configs" / "logging.conf"),
        **overrides,
    )


def run_demo(
    output_dir: str | Path = "./demo_output",
    epochs: int = 8,
    n_train: int = 24,
    n_test: int = 6,
    image_size: int = 64,
    bundle_dir: str | Path = DEFAULT_BUNDLE_DIR,
    seed: int = 0,
) -> dict:
    """
    Generate the synthetic data (if absent) and run training, evaluation and inference of the GLaS bundle.

    Args:
        output_dir: demo folder; the data go to ``<output_dir>/glas_synthetic`` and the bundle outputs to
            ``<output_dir>/masksup_glas`` (``models/``, ``eval/``).
        epochs: training epochs.
        n_train: synthetic training images (a seeded fifth of them, by patient, validates).
        n_test: synthetic test images (split between testA and testB).
        image_size: network input size (square).
        bundle_dir: the ``masksup_glas`` bundle folder.
        seed: seed of the synthetic data and of the bundle runs.

    Returns:
        ``{"data_dir", "bundle_root", "checkpoint", "tensorboard_dir", "eval_dir", "prediction_dir",
        "test_iou", "test_dice", "robustness_rows", "seconds"}``.

    Raises:
        FileNotFoundError: when ``bundle_dir`` holds no ``configs/train.json``.
        ValueError: for non-positive ``epochs``, fewer than 2 training or test images, or an image size
            below 32.
    """
    from monai_masksup.data import make_synthetic_glas

    bundle_dir = Path(bundle_dir)
    if not (bundle_dir / "configs" / "train.json").is_file():
        raise FileNotFoundError(
            f"bundle_dir '{bundle_dir}' holds no configs/train.json; the demo runs the masksup_glas bundle of a "
            "source checkout (<repo>/bundles/masksup_glas): pass --bundle_dir to point at it."
        )
    if epochs < 1 or n_train < 2 or n_test < 2 or image_size < 32:
        raise ValueError(
            f"need epochs >= 1, n_train >= 2, n_test >= 2 and image_size >= 32; got {epochs}, {n_train}, "
            f"{n_test}, {image_size}."
        )
    start = time.perf_counter()
    output_dir = Path(output_dir).resolve()
    data_dir = output_dir / "glas_synthetic"
    if not (data_dir / "Grade.csv").is_file():
        print(f"[demo] generating synthetic GLaS data in {data_dir}")
        make_synthetic_glas(
            data_dir, n_train=n_train, n_test_a=n_test - n_test // 2, n_test_b=n_test // 2, size=(96, 128), seed=seed
        )
    else:
        print(f"[demo] using existing synthetic GLaS data in {data_dir}")
    bundle_root = output_dir / "masksup_glas"
    common = {
        "bundle_root": str(bundle_root),
        "dataset_dir": str(data_dir),
        "image_size": [image_size, image_size],
        "seed": seed,
    }
    print(f"[demo] training ({epochs} epochs) with {bundle_dir / 'configs' / 'train.json'} + demo.json")
    if (bundle_root / "models").is_dir():
        print(f"[demo] replacing the earlier demo run's checkpoints in {bundle_root / 'models'}")
    # the demo folder is the demo's own: a second demo run replaces the first instead of refusing to start
    _bundle_run(bundle_dir, ["train.json", "demo.json"], epochs=epochs, overwrite=True, **common)
    print("[demo] evaluating the best checkpoint on the synthetic test set")
    _bundle_run(bundle_dir, ["train.json", "demo.json", "evaluate.json"], **common)
    print("[demo] inference: one PNG mask per test image, at the image's original size")
    _bundle_run(bundle_dir, ["inference.json", "demo.json"], **common)

    eval_dir = bundle_root / "eval"
    summary = json.loads((eval_dir / "metrics.json").read_text())
    with open(eval_dir / "robustness.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    result = {
        "data_dir": str(data_dir),
        "bundle_root": str(bundle_root),
        "checkpoint": str(bundle_root / "models" / "model.pt"),
        "tensorboard_dir": str(eval_dir / "tensorboard"),
        "eval_dir": str(eval_dir),
        "prediction_dir": str(eval_dir / "predictions"),
        "test_iou": _mean_of(summary, "iou"),
        "test_dice": _mean_of(summary, "dice"),
        "robustness_rows": rows,
        "seconds": time.perf_counter() - start,
    }
    return result


def _mean_of(report: dict, metric: str) -> float | None:
    """The mean of ``metric`` in a ``metrics.json`` report (``{"summary": {"<metric>_mean": ...}}``)."""
    value = report.get("summary", {}).get(f"{metric}_mean")
    return None if value is None else float(value)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; see the module docstring and ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m monai_masksup.demo",
        description="MaskSup end-to-end demo on generated GLaS-like data: train, evaluate, infer (CPU, minutes).",
    )
    parser.add_argument("--output_dir", default="./demo_output", help="demo folder (default ./demo_output)")
    parser.add_argument("--epochs", type=int, default=8, help="training epochs (default 8)")
    parser.add_argument("--n_train", type=int, default=24, help="synthetic training images (default 24)")
    parser.add_argument("--n_test", type=int, default=6, help="synthetic test images (default 6)")
    parser.add_argument("--image_size", type=int, default=64, help="network input size (default 64)")
    parser.add_argument("--bundle_dir", default=str(DEFAULT_BUNDLE_DIR), help="the masksup_glas bundle folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    result = run_demo(
        output_dir=args.output_dir,
        epochs=args.epochs,
        n_train=args.n_train,
        n_test=args.n_test,
        image_size=args.image_size,
        bundle_dir=args.bundle_dir,
        seed=args.seed,
    )
    print("\n[demo] done in {:.0f} s".format(result["seconds"]))
    print(f"  synthetic data      : {result['data_dir']}")
    print(f"  best checkpoint     : {result['checkpoint']}")
    print(f"  TensorBoard logs    : {result['tensorboard_dir']}  (tensorboard --logdir {result['tensorboard_dir']})")
    print(f"  evaluation report   : {result['eval_dir']}/metrics.json, metrics.csv")
    print(f"  masked robustness   : {result['eval_dir']}/robustness.json, .csv, .png, robustness_examples.png")
    print(f"  predicted masks     : {result['prediction_dir']}")
    if result["test_iou"] is not None:
        print(f"  test IoU / Dice     : {result['test_iou']:.3f} / {result['test_dice']:.3f} (synthetic data, tiny net)")
    for row in result["robustness_rows"]:
        print(f"    holes {row['bin']:>7}: IoU {float(row['iou_mean']):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
