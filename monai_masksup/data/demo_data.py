"""The generated demo data a bundle trains on when no data set is configured."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from .errors import DatasetLayoutError
from .synthetic_glas import make_synthetic_glas
from .synthetic_polyps import make_synthetic_polyps

__all__ = [
    "DEMO_IMAGE_SIZE",
    "GLAS_DEMO_FOLDER",
    "GLAS_DEMO_MARKER",
    "POLYP_DEMO_FOLDER",
    "POLYP_DEMO_MARKER",
    "generate_demo_set_once",
    "glas_or_demo",
    "log_demo_notice",
    "make_demo_glas",
    "make_demo_polyps",
    "polyps_or_demo",
]

logger = logging.getLogger(__name__)

#: ``(height, width)`` of the generated demo images (the demo of ``python -m monai_masksup.demo``).
DEMO_IMAGE_SIZE = (96, 128)
#: sub-folder of a demo folder holding the generated GLaS set, and the file whose presence means it is complete.
GLAS_DEMO_FOLDER, GLAS_DEMO_MARKER = "glas_synthetic", "Grade.csv"
#: sub-folder of a demo folder holding the generated polyp sets, and the file whose presence means they are complete.
POLYP_DEMO_FOLDER, POLYP_DEMO_MARKER = "polyps_synthetic", "splits/cvc_test.txt"


def make_demo_glas(folder: str | os.PathLike, n_train: int = 24, n_test: int = 6, seed: int = 0) -> None:
    """Write the generated GLaS demo set (:func:`make_synthetic_glas`, Warwick layout, :data:`DEMO_IMAGE_SIZE`).

    Args:
        folder: where to write it.
        n_train: training images.
        n_test: test images, ``n_test - n_test // 2`` in testA and ``n_test // 2`` in testB.
        seed: seed of the generator.
    """
    make_synthetic_glas(
        folder, n_train=n_train, n_test_a=n_test - n_test // 2, n_test_b=n_test // 2, size=DEMO_IMAGE_SIZE, seed=seed
    )


def make_demo_polyps(folder: str | os.PathLike, n_train: int = 24, n_test: int = 6, seed: int = 0) -> None:
    """Write the generated Kvasir-SEG + CVC-ClinicDB demo sets (:func:`make_synthetic_polyps`, :data:`DEMO_IMAGE_SIZE`).

    A third of the training frames are CVC-ClinicDB frames, the rest Kvasir-SEG, as in the paper's mix (900
    Kvasir + 550 CVC); the ``n_test`` test frames are CVC-ClinicDB frames, listed in ``splits/cvc_test.txt``.

    Args:
        folder: where to write them (``Kvasir-SEG/``, ``CVC-ClinicDB/``, ``splits/``).
        n_train: training frames.
        n_test: CVC-ClinicDB test frames.
        seed: seed of the generator.
    """
    n_cvc_train = max(1, n_train // 3)
    make_synthetic_polyps(
        folder,
        n_kvasir=n_train - n_cvc_train,
        n_cvc=n_cvc_train + n_test,
        n_cvc_test=n_test,
        size=DEMO_IMAGE_SIZE,
        seed=seed,
    )


def generate_demo_set_once(folder: Path, marker: str, make: Callable[[Path], object]) -> Path:
    """Generate a data set into ``folder`` unless it already holds one (its ``marker`` file exists).

    The set is written into a temporary sibling folder and renamed into place, so a killed run never leaves a
    half-written set that a later run would take for complete, and two processes (DDP ranks) starting at once
    both end up with one complete set.
    """
    if (folder / marker).is_file():
        return folder
    if folder.exists():
        raise DatasetLayoutError(
            f"'{folder}' exists but holds no complete generated demo set (no {marker}): delete it, or configure a "
            "data set."
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    make(staging)
    try:
        staging.rename(folder)
    except OSError:
        if not (folder / marker).is_file():
            raise
        shutil.rmtree(staging, ignore_errors=True)  # another process finished first: keep its copy
    return folder


def log_demo_notice(folder: Path, action: str, options: str, dataset: str) -> None:
    """Log the bundles' one notice that no data set is configured and the generated demo set is used.

    Args:
        folder: the demo set's folder.
        action: what the run does with it (``"training"``, ``"evaluating"``, ...).
        options: the command-line options that configure the real data set.
        dataset: the real data set's name.
    """
    logger.warning(
        f"no data set configured: {action} on the generated demo set in {folder}; pass {options} to use {dataset}"
    )


def glas_or_demo(
    dataset_dir: str | os.PathLike | None, demo_dir: str | os.PathLike, action: str = "training"
) -> str:
    """The GLaS folder a bundle reads: ``dataset_dir`` when configured, else the generated demo set.

    Without a configured data set (``dataset_dir`` is ``None``) a small GLaS-like set in the Warwick layout
    (:func:`make_demo_glas` with its defaults: 24 training and 3 + 3 test images of 96 x 128, seed 0, as
    ``python -m monai_masksup.demo``) is generated once in ``<demo_dir>/glas_synthetic`` and reused by later
    runs, and the log says so. A configured folder is returned as given: when it is missing or empty the GLaS
    indexer raises an error that names it; it never falls back to generated data.

    Args:
        dataset_dir: the configured GLaS folder, or ``None``.
        demo_dir: the folder that holds generated demo sets (e.g. under the bundle's output folder).
        action: what the bundle does with the data, for the log line (``"training"``, ``"inference"``).

    Returns:
        the folder to index, as a string.

    Raises:
        ValueError: when ``dataset_dir`` is an empty string (an unset shell variable, most likely).
        DatasetLayoutError: when the demo folder exists but holds no complete generated set.
    """
    if dataset_dir is not None:
        if not str(dataset_dir).strip():
            raise ValueError("`dataset_dir` is an empty string: give the GLaS folder, or leave the option out.")
        return str(dataset_dir)
    folder = Path(demo_dir).resolve() / GLAS_DEMO_FOLDER
    generate_demo_set_once(folder, GLAS_DEMO_MARKER, make_demo_glas)
    log_demo_notice(folder, action, "--dataset_dir", "GlaS")
    return str(folder)


def polyps_or_demo(
    kvasir_dir: str | os.PathLike | None,
    cvc_dir: str | os.PathLike | None,
    demo_dir: str | os.PathLike,
    action: str = "training",
    need_kvasir: bool = True,
) -> dict[str, str | None]:
    """The Kvasir-SEG and CVC-ClinicDB folders a bundle reads: the configured ones, else the generated demo set.

    Without a configured data set (both folders ``None``) small polyp sets in the native Kvasir-SEG and
    CVC-ClinicDB layouts (:func:`make_demo_polyps` with its defaults: 16 Kvasir-SEG and 14 CVC-ClinicDB frames of
    96 x 128, seed 0, as ``python -m monai_masksup.demo --bundle kvasir``) are generated once in
    ``<demo_dir>/polyps_synthetic`` and reused, and the log says so. Configured folders are returned as given (a
    missing or empty one is reported by the indexers, naming it); a partly configured data set is refused rather
    than completed with generated frames.

    Args:
        kvasir_dir: the configured Kvasir-SEG folder, or ``None``.
        cvc_dir: the configured CVC-ClinicDB folder, or ``None``.
        demo_dir: the folder that holds generated demo sets.
        action: what the bundle does with the data, for the log line.
        need_kvasir: whether the caller reads Kvasir-SEG (training does; inference on the CVC-ClinicDB test
            frames does not, so there ``cvc_dir`` alone is a configured data set).

    Returns:
        ``{"kvasir_dir": ..., "cvc_dir": ...}`` (``kvasir_dir`` may be ``None`` when not ``need_kvasir``).

    Raises:
        ValueError: when only one of the folders needed is configured, or one is an empty string.
        DatasetLayoutError: when the demo folder exists but holds no complete generated set.
    """
    given = {"kvasir_dir": kvasir_dir, "cvc_dir": cvc_dir}
    for name, value in given.items():
        if value is not None and not str(value).strip():
            raise ValueError(f"`{name}` is an empty string: give the folder, or leave the option out.")
    needed = ("kvasir_dir", "cvc_dir") if need_kvasir else ("cvc_dir",)
    if any(given[name] is not None for name in given):
        missing = [name for name in needed if given[name] is None]
        if missing:
            options = "both --kvasir_dir and --cvc_dir" if need_kvasir else "--cvc_dir"
            raise ValueError(
                f"only part of the polyp data is configured: {', '.join('--' + m for m in missing)} is missing. "
                f"Give {options}, or neither folder to use the generated demo set."
            )
        return {name: None if value is None else str(value) for name, value in given.items()}
    folder = Path(demo_dir).resolve() / POLYP_DEMO_FOLDER
    generate_demo_set_once(folder, POLYP_DEMO_MARKER, make_demo_polyps)
    log_demo_notice(folder, action, "--kvasir_dir and --cvc_dir", "Kvasir-SEG and CVC-ClinicDB")
    return {"kvasir_dir": str(folder / "Kvasir-SEG"), "cvc_dir": str(folder / "CVC-ClinicDB")}
