"""The polyp experiment's split: Kvasir-SEG + CVC-ClinicDB frames to train on, held-out CVC-ClinicDB frames to test."""

from __future__ import annotations

import os
from collections.abc import Sequence

from .cvc_clinicdb import index_cvc_clinicdb
from .kvasir import index_kvasir_seg
from .splits import read_id_list, select_ids, split_train_val

__all__ = ["polyp_split"]

IdSelection = str | os.PathLike | Sequence[str] | None


def _selection_source(ids: IdSelection) -> str:
    return f"split file '{ids}'" if isinstance(ids, (str, os.PathLike)) else "the given ids"


def polyp_split(
    cvc_dir: str | os.PathLike,
    kvasir_dir: str | os.PathLike | None = None,
    kvasir_train_ids: IdSelection = None,
    cvc_train_ids: IdSelection = None,
    cvc_test_ids: IdSelection = None,
    cvc_test_fraction: float = 0.1,
    seed: int = 0,
    decode: bool = False,
) -> dict[str, list[dict]]:
    """The training items and the CVC-ClinicDB test frames of the MaskSup polyp experiment.

    The paper trains on Kvasir-SEG and CVC-ClinicDB frames and tests on held-out CVC-ClinicDB frames (the
    PraNet split: Kvasir 900 + CVC 550 for training, the other 62 CVC frames for testing). The test frames are
    ``cvc_test_ids`` when given, otherwise a seeded ``cvc_test_fraction`` of all CVC-ClinicDB frames
    (:func:`split_train_val`, so the same data and seed give the same frames on any machine). The training
    items are the Kvasir-SEG pairs (``kvasir_train_ids`` or all), then the CVC-ClinicDB frames
    (``cvc_train_ids`` or all) that are not test frames. The bundle's ``train.json`` and ``inference.json``
    both call this function, so that training never sees the frames inference and evaluation report on.

    Args:
        cvc_dir: the ``CVC-ClinicDB`` folder (see :func:`index_cvc_clinicdb`).
        kvasir_dir: the ``Kvasir-SEG`` folder (see :func:`index_kvasir_seg`); ``None`` leaves Kvasir-SEG out of
            the training items (inference needs only the test frames).
        kvasir_train_ids: Kvasir-SEG ids for training: a split file, a sequence of ids, or ``None`` for all.
        cvc_train_ids: CVC-ClinicDB frame numbers for training (test frames among them are dropped), or ``None``
            for every frame that is not a test frame.
        cvc_test_ids: CVC-ClinicDB frame numbers held out for testing, or ``None`` (also an empty string) for the
            seeded fraction.
        cvc_test_fraction: fraction of the CVC-ClinicDB frames held out when ``cvc_test_ids`` is not given.
        seed: seed of that hold-out.
        decode: also decode every image and label completely while indexing (see :func:`index_kvasir_seg`):
            finds compressed data damaged without marker damage, at the cost of one full decode of every file.

    Returns:
        ``{"train": [...], "test": [...]}`` MONAI datalists (``{"image": path, "label": path}`` items).

    Raises:
        DatasetLayoutError: when a folder is missing, empty or not in its publisher's layout.
        DataFileError: for unpaired, truncated or mismatched files, or ids (from a split file) without a pair.
        ValueError: when ``cvc_test_fraction`` is outside ``(0, 1)``.
    """
    cvc_items = index_cvc_clinicdb(cvc_dir, decode=decode)
    if cvc_test_ids:
        test = select_ids(cvc_items, read_id_list(cvc_test_ids), source=_selection_source(cvc_test_ids))
    else:
        test = split_train_val(cvc_items, val_fraction=cvc_test_fraction, seed=seed)[1]
    cvc_train = cvc_items
    if cvc_train_ids:
        cvc_train = select_ids(cvc_items, read_id_list(cvc_train_ids), source=_selection_source(cvc_train_ids))
    test_images = {item["image"] for item in test}
    train = [] if kvasir_dir is None else index_kvasir_seg(kvasir_dir, ids=kvasir_train_ids, decode=decode)
    train += [item for item in cvc_train if item["image"] not in test_images]
    return {"train": train, "test": test}
