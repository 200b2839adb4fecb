"""Repeated seeded OCT splits by subject: few pixel-labelled B-scans, some image-labelled, the rest unlabelled."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np

from .errors import DataFileError
from .metaimage_header import metaimage_size

__all__ = [
    "SPLIT_PARTS",
    "volume_bscan_items",
    "group_bscans_by_volume",
    "oct_semi_supervised_splits",
    "summarize_repeated_splits",
]

#: the parts of one split: pixel-labelled, image-level-labelled and unlabelled training B-scans, test B-scans.
SPLIT_PARTS: tuple[str, ...] = ("pixel", "image", "unlabelled", "test")


def _n_bscans(path: str) -> int:
    if path.lower().endswith(".mhd"):
        return metaimage_size(path)[-1]
    if path.lower().endswith((".nii", ".nii.gz")):
        import nibabel as nib

        return int(nib.load(path).shape[2])
    raise DataFileError(f"cannot tell the number of B-scans of '{path}': expected a .mhd or .nii[.gz] volume.")


def volume_bscan_items(volumes: Sequence[dict], bscan_key: str = "bscan") -> list[dict]:
    """One item per B-scan of each volume (read from the headers), for splitting B-scans by subject.

    Args:
        volumes: volume items with an ``"image"`` path (``.mhd`` or NIfTI) and a ``"subject"``.
        bscan_key: item key of the B-scan index.

    Returns:
        copies of the volume items, ``n_bscans`` per volume, each with its B-scan index under ``bscan_key``.

    Raises:
        DataFileError: naming the file when its header cannot be read.
    """
    return [dict(v, **{bscan_key: k}) for v in volumes for k in range(_n_bscans(str(v["image"])))]


def group_bscans_by_volume(
    bscan_items: Sequence[dict], bscan_key: str = "bscan", bscans_key: str = "bscans"
) -> list[dict]:
    """Volume items listing their selected B-scans, for :func:`oct_bscan_dataset` (one load per volume).

    Args:
        bscan_items: per-B-scan items of :func:`volume_bscan_items` (e.g. one part of a split).
        bscan_key: item key of the B-scan index.
        bscans_key: key of the list of B-scan indices in the returned volume items.

    Returns:
        one item per volume (first-seen order) with the sorted indices under ``bscans_key``.
    """
    volumes: dict[str, dict] = {}
    for item in bscan_items:
        volume = volumes.setdefault(str(item["image"]), {k: v for k, v in item.items() if k != bscan_key})
        volume.setdefault(bscans_key, []).append(int(item[bscan_key]))
    for volume in volumes.values():
        volume[bscans_key] = sorted(volume[bscans_key])
    return list(volumes.values())


def oct_semi_supervised_splits(
    bscan_items: Sequence[dict],
    n_pixel_labelled: int = 24,
    image_label_share: float = 0.5,
    test_fraction: float = 0.25,
    n_splits: int = 10,
    seed: int = 0,
    group_key: str = "subject",
) -> list[dict[str, list[dict]]]:
    """Repeated seeded splits of B-scans for semi- and weakly supervised OCT segmentation.

    As in the supplement of "Every Annotation Counts" (Reiß et al., CVPR 2021): for split ``r`` (seed
    ``seed + r``) the subjects are shuffled and ``test_fraction`` of them (at least one) held out as the test
    set; of the other subjects' B-scans, ``n_pixel_labelled`` drawn at random keep their pixel labels,
    ``image_label_share`` of the rest get image-level labels only (derive them with
    :class:`ImageLevelLabelsd`), the remainder is unlabelled. A subject's B-scans are strongly correlated, so
    a subject is never on both sides of the train/test cut. The same items, options and seed give the same
    splits on any machine (NumPy's PCG64).

    Args:
        bscan_items: one item per B-scan (Duke: :func:`index_duke_oct`; volumes: :func:`volume_bscan_items`),
            each with ``group_key``.
        n_pixel_labelled: pixel-labelled training B-scans per split (24 as in the supplement).
        image_label_share: share, in ``[0, 1]``, of the remaining training B-scans given image-level labels.
        test_fraction: share of subjects held out for testing, in ``(0, 1)``.
        n_splits: number of repeated splits (10 as in the supplement).
        seed: seed of the first split.
        group_key: item key of the subject.

    Returns:
        ``n_splits`` dicts with the parts :data:`SPLIT_PARTS` (``"pixel"``, ``"image"``, ``"unlabelled"``,
        ``"test"``), each a list of the original items in their original order.

    Raises:
        ValueError: for options out of range, or fewer than two subjects.
        DataFileError: when an item lacks ``group_key``, or the training subjects of a split have fewer than
            ``n_pixel_labelled`` B-scans.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}.")
    if not 0.0 <= image_label_share <= 1.0:
        raise ValueError(f"image_label_share must be in [0, 1], got {image_label_share}.")
    if n_pixel_labelled < 1 or n_splits < 1:
        raise ValueError(f"n_pixel_labelled and n_splits must be positive, got {n_pixel_labelled} and {n_splits}.")
    missing = [i for i, item in enumerate(bscan_items) if group_key not in item]
    if missing:
        raise DataFileError(f"B-scan item {missing[0]} ({bscan_items[missing[0]].get('image')}) has no '{group_key}'.")
    subjects: list[Hashable] = list(dict.fromkeys(item[group_key] for item in bscan_items))
    if len(subjects) < 2:
        raise ValueError(f"splitting by '{group_key}' needs at least two subjects, got {len(subjects)}.")
    n_test = min(max(int(round(test_fraction * len(subjects))), 1), len(subjects) - 1)
    splits = []
    for r in range(n_splits):
        rng = np.random.default_rng(seed + r)
        test_subjects = {subjects[i] for i in rng.permutation(len(subjects))[:n_test]}
        train = [i for i, item in enumerate(bscan_items) if item[group_key] not in test_subjects]
        if len(train) < n_pixel_labelled:
            raise DataFileError(
                f"split {r}: the training subjects have {len(train)} B-scans, fewer than n_pixel_labelled="
                f"{n_pixel_labelled}; lower it or test_fraction."
            )
        order = [train[i] for i in rng.permutation(len(train))]
        pixel = set(order[:n_pixel_labelled])
        rest = order[n_pixel_labelled:]
        image = set(rest[: int(math.floor(image_label_share * len(rest) + 0.5))])
        part_of = {i: "pixel" if i in pixel else "image" if i in image else "unlabelled" for i in train}
        split: dict[str, list[dict]] = {part: [] for part in SPLIT_PARTS}
        for i, item in enumerate(bscan_items):
            split[part_of.get(i, "test")].append(item)
        splits.append(split)
    return splits


def summarize_repeated_splits(values: Sequence[float], ddof: int = 1, digits: int = 3) -> dict:
    """Mean ± standard deviation of a score (e.g. mIoU) over repeated splits, as the results tables give it.

    Args:
        values: one score per split (e.g. MONAI ``MeanIoU`` of each split's test set).
        ddof: delta degrees of freedom of the standard deviation: 1 (default) for the sample standard deviation
            over splits, 0 for the population one.
        digits: decimals of the text form.

    Returns:
        ``{"mean": float, "std": float, "n": int, "text": "0.712 ± 0.034"}``; ``std`` is 0 for a single split.

    Raises:
        ValueError: when ``values`` is empty or holds a NaN (a split whose metric failed).
    """
    data = np.asarray(list(values), dtype=np.float64)
    if data.size == 0:
        raise ValueError("no values to summarise.")
    if np.isnan(data).any():
        raise ValueError(f"values of splits {np.flatnonzero(np.isnan(data)).tolist()} are NaN.")
    mean = float(data.mean())
    std = float(data.std(ddof=ddof)) if data.size > ddof else 0.0
    return {"mean": mean, "std": std, "n": int(data.size), "text": f"{mean:.{digits}f} ± {std:.{digits}f}"}
