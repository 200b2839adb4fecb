"""End-to-end MaskSup demo: ``python -m monai_masksup.demo [--bundle glas|kvasir]``.

Generates a small synthetic data set in the real data set's layout (when absent): GLaS in the Warwick layout
for ``--bundle glas`` (the default), Kvasir-SEG + CVC-ClinicDB in their native layouts for ``--bundle kvasir``.
Then runs that bundle (``masksup_glas`` or ``masksup_kvasir``, found as :func:`find_bundle_dir` says) exactly as
a user would, through ``monai.bundle.run`` with the bundle's own ``train.json``, ``evaluate.json`` and
``inference.json``, plus the ``demo.json`` overlay (a small BasicUNet at 64x64 instead of LeViT-UNet-384 at
224x224, a few epochs) so that everything finishes quickly on a laptop CPU (timings: docs/benchmarks.md).
Prints where the checkpoints, TensorBoard logs, evaluation report, robustness plot and predicted masks are.

The numbers it prints come from synthetic images and a tiny network: they show that the pipeline works,
not how well MaskSup segments glands or polyps.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BUNDLES_DIR",
    "BUNDLES_ENV",
    "DEFAULT_BUNDLE_DIR",
    "DEMOS",
    "DemoData",
    "bundle_search_path",
    "find_bundle_dir",
    "run_demo",
    "main",
]

#: the bundles of a source checkout (``<repo>/bundles``).
BUNDLES_DIR = Path(__file__).resolve().parents[1] / "bundles"
#: the GLaS bundle of a source checkout (``<repo>/bundles/masksup_glas``).
DEFAULT_BUNDLE_DIR = BUNDLES_DIR / "masksup_glas"
#: environment variable naming a folder that holds the bundles (``masksup_glas/``, ``masksup_kvasir/``).
BUNDLES_ENV = "MONAI_MASKSUP_BUNDLES"
#: the copy of the bundles that ``pip install`` puts inside the package (see setup.py).
_INSTALLED_BUNDLES_DIR = Path(__file__).resolve().parent / "_bundles"


def bundle_search_path() -> list[Path]:
    """The folders searched for the bundles, first match wins.

    1. ``$MONAI_MASKSUP_BUNDLES``, when set: the user's own choice;
    2. ``<repo>/bundles`` of the source checkout this package was imported from (an editable install);
    3. ``./bundles`` in the current folder (a clone used with a non-editable install);
    4. the copy installed inside the package (``monai_masksup/_bundles``, written by ``pip install .``).

    Returns:
        the candidate folders, each expected to hold ``<bundle name>/configs/train.json``.
    """
    path = [Path(os.environ[BUNDLES_ENV])] if os.environ.get(BUNDLES_ENV) else []
    return path + [BUNDLES_DIR, Path.cwd() / "bundles", _INSTALLED_BUNDLES_DIR]


def find_bundle_dir(name: str) -> Path:
    """The folder of bundle ``name`` (e.g. ``"masksup_glas"``): the first of :func:`bundle_search_path` holding it.

    Args:
        name: the bundle's folder name.

    Returns:
        ``<folder>/<name>``, which holds ``configs/train.json``.

    Raises:
        FileNotFoundError: naming every folder searched and the ways to point at the bundles.
    """
    candidates = bundle_search_path()
    for folder in candidates:
        if (folder / name / "configs" / "train.json").is_file():
            return folder / name
    searched = ", ".join(f"'{folder / name}'" for folder in candidates)
    raise FileNotFoundError(
        f"cannot find the {name} bundle (configs/train.json); searched {searched}. Run from a clone of the "
        f"repository (its bundles/ folder), set {BUNDLES_ENV} to the folder holding {name}/, or pass --bundle_dir "
        f"<path>/{name}."
    )


def _make_glas(data_dir: Path, n_train: int, n_test: int, seed: int) -> dict:
    """Synthetic GLaS (Warwick layout, the bundles' own demo set) and the bundle overrides pointing at it."""
    from monai_masksup.data.demo_data import make_demo_glas

    make_demo_glas(data_dir, n_train=n_train, n_test=n_test, seed=seed)
    return _glas_overrides(data_dir)


def _glas_overrides(data_dir: Path) -> dict:
    """GLaS bundle overrides for synthetic data in ``data_dir``."""
    return {"dataset_dir": str(data_dir)}


def _make_polyps(data_dir: Path, n_train: int, n_test: int, seed: int) -> dict:
    """Synthetic Kvasir-SEG + CVC-ClinicDB (the bundles' own demo sets) and the bundle overrides pointing at them."""
    from monai_masksup.data.demo_data import make_demo_polyps

    make_demo_polyps(data_dir, n_train=n_train, n_test=n_test, seed=seed)
    return _polyp_overrides(data_dir)


def _polyp_overrides(data_dir: Path) -> dict:
    """Kvasir bundle overrides for synthetic data in ``data_dir`` (the split file fixes the CVC test frames)."""
    return {
        "kvasir_dir": str(data_dir / "Kvasir-SEG"),
        "cvc_dir": str(data_dir / "CVC-ClinicDB"),
        "cvc_test_ids": str(data_dir / "splits" / "cvc_test.txt"),
    }


@dataclass(frozen=True)
class DemoData:
    """How the demo feeds one bundle: its folder, its synthetic data and the overrides pointing at them.

    Args:
        bundle_dir: the bundle folder of a source checkout (:func:`find_bundle_dir` also searches elsewhere).
        data_name: sub-folder of the demo folder for the synthetic data.
        description: words for the printout (``"synthetic GLaS data"``).
        marker: file (relative to the data folder) whose presence means the data were generated.
        make: ``make(data_dir, n_train, n_test, seed) -> overrides`` writes the data.
        overrides: ``overrides(data_dir) -> dict`` of bundle overrides for existing data.
    """

    bundle_dir: Path
    data_name: str
    description: str
    marker: str
    make: Callable[[Path, int, int, int], dict]
    overrides: Callable[[Path], dict]


#: bundle name -> how the demo runs it.
DEMOS: dict[str, DemoData] = {
    "glas": DemoData(
        DEFAULT_BUNDLE_DIR, "glas_synthetic", "synthetic GLaS data", "Grade.csv", _make_glas, _glas_overrides
    ),
    "kvasir": DemoData(
        BUNDLES_DIR / "masksup_kvasir",
        "polyps_synthetic",
        "synthetic Kvasir-SEG + CVC-ClinicDB data",
        "splits/cvc_test.txt",
        _make_polyps,
        _polyp_overrides,
    ),
}


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
    bundle_dir: str | Path | None = None,
    seed: int = 0,
    bundle: str = "glas",
) -> dict:
    """
    Generate the synthetic data (if absent) and run training, evaluation and inference of one bundle.

    Args:
        output_dir: demo folder; the data go to ``<output_dir>/glas_synthetic`` (``polyps_synthetic`` for
            Kvasir) and the bundle outputs to ``<output_dir>/<bundle folder name>`` (``models/``, ``eval/``).
        epochs: training epochs.
        n_train: synthetic training images (a seeded fifth of them validates; GLaS: by patient; Kvasir: a
            third are CVC-ClinicDB frames, the rest Kvasir-SEG).
        n_test: synthetic test images (GLaS: split between testA and testB; Kvasir: CVC-ClinicDB frames).
        image_size: network input size (square).
        bundle_dir: the bundle folder; ``None`` to find the bundle of ``bundle`` with :func:`find_bundle_dir`.
        seed: seed of the synthetic data and of the bundle runs.
        bundle: ``"glas"`` (``masksup_glas``) or ``"kvasir"`` (``masksup_kvasir``), a key of :data:`DEMOS`.

    Returns:
        ``{"data_dir", "bundle_root", "checkpoint", "tensorboard_dir", "eval_dir", "prediction_dir",
        "test_iou", "test_dice", "robustness_rows", "seconds"}``.

    Raises:
        FileNotFoundError: when ``bundle_dir`` holds no ``configs/train.json``, or (``bundle_dir=None``) the bundle is
            in none of the folders of :func:`bundle_search_path`.
        ValueError: for an unknown ``bundle``, non-positive ``epochs``, fewer than 2 training or test images, or an
            image size below 32.
    """
    if bundle not in DEMOS:
        raise ValueError(f"bundle must be one of {sorted(DEMOS)}, got '{bundle}'.")
    demo = DEMOS[bundle]
    bundle_dir = find_bundle_dir(demo.bundle_dir.name) if bundle_dir is None else Path(bundle_dir)
    if not (bundle_dir / "configs" / "train.json").is_file():
        default = demo.bundle_dir.name
        raise FileNotFoundError(
            f"bundle_dir '{bundle_dir}' holds no configs/train.json; the demo runs the {default} bundle of a "
            f"source checkout (<repo>/bundles/{default}): pass --bundle_dir to point at it."
        )
    if epochs < 1 or n_train < 2 or n_test < 2 or image_size < 32:
        raise ValueError(
            f"need epochs >= 1, n_train >= 2, n_test >= 2 and image_size >= 32; got {epochs}, {n_train}, "
            f"{n_test}, {image_size}."
        )
    start = time.perf_counter()
    output_dir = Path(output_dir).resolve()
    data_dir = output_dir / demo.data_name
    if not (data_dir / demo.marker).is_file():
        print(f"[demo] generating {demo.description} in {data_dir}")
        data_overrides = demo.make(data_dir, n_train, n_test, seed)
    else:
        print(f"[demo] using existing {demo.description} in {data_dir}")
        data_overrides = demo.overrides(data_dir)
    bundle_root = output_dir / demo.bundle_dir.name
    common = {
        "bundle_root": str(bundle_root),
        **data_overrides,
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
        description="MaskSup end-to-end demo on generated GLaS-like (default) or polyp-like data: train, evaluate, "
        "infer (CPU, minutes).",
    )
    parser.add_argument(
        "--bundle", default="glas", choices=sorted(DEMOS), help="bundle to run: glas (default) or kvasir (polyps)"
    )
    parser.add_argument("--output_dir", default="./demo_output", help="demo folder (default ./demo_output)")
    parser.add_argument("--epochs", type=int, default=8, help="training epochs (default 8)")
    parser.add_argument("--n_train", type=int, default=24, help="synthetic training images (default 24)")
    parser.add_argument("--n_test", type=int, default=6, help="synthetic test images (default 6)")
    parser.add_argument("--image_size", type=int, default=64, help="network input size (default 64)")
    parser.add_argument(
        "--bundle_dir",
        default=None,
        help=f"the bundle folder (default: masksup_glas / masksup_kvasir from ${BUNDLES_ENV}, the package's source "
        "checkout, ./bundles, or the copy installed with the package, in that order)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    bundle_dir = args.bundle_dir
    if bundle_dir is None:
        try:
            bundle_dir = find_bundle_dir(DEMOS[args.bundle].bundle_dir.name)
        except FileNotFoundError as e:
            # a set-up problem with one fix, not a crash: say it in one line
            print(f"python -m monai_masksup.demo: {e}", file=sys.stderr)
            return 2
    result = run_demo(
        output_dir=args.output_dir,
        epochs=args.epochs,
        n_train=args.n_train,
        n_test=args.n_test,
        image_size=args.image_size,
        bundle_dir=bundle_dir,
        seed=args.seed,
        bundle=args.bundle,
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
