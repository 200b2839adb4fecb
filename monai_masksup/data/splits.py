"""Id lists, seeded train/validation splits and the choice of the checkpoint-selection set."""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np

from .errors import DataFileError
from .layout import IMAGE_SUFFIXES

__all__ = ["read_id_list", "select_ids", "split_train_val", "make_splits"]


def read_id_list(ids: str | os.PathLike | Sequence[str] | None) -> list[str] | None:
    """Normalise an id selection: ``None``, a list of ids, or a split file with one id per line.

    A split file is like Kvasir-SEG's MediaEval ``splits_medico2020/train.txt``: blank lines and lines
    starting with ``#`` are skipped, extensions are dropped (``a.jpg`` -> ``a``).

    Args:
        ids: ``None`` (everything), a path to a split file, or a sequence of ids.

    Returns:
        the ids in file order, or ``None``.

    Raises:
        DataFileError: when the split file does not exist or lists no id.
    """
    if ids is None:
        return None
    if isinstance(ids, (str, os.PathLike)):
        path = Path(ids)
        if not path.is_file():
            raise DataFileError(f"split file '{path}' does not exist (expected a text file with one id per line).")
        lines = [line.strip() for line in path.read_text().splitlines()]
        out = [
            Path(line).stem if Path(line).suffix.lower() in IMAGE_SUFFIXES else line
            for line in lines
            if line and not line.startswith("#")
        ]
        if not out:
            raise DataFileError(f"split file '{path}' lists no id.")
        return out
    return [str(i) for i in ids]


def select_ids(
    datalist: Sequence[dict], ids: Sequence[str], source: str = "the id list", key: str = "image"
) -> list[dict]:
    """Keep the items whose ``key`` file stem is one of ``ids``, in the order of ``datalist``.

    Args:
        datalist: MONAI datalist.
        ids: file stems to keep.
        source: where the ids came from, for the error message (e.g. the split file).
        key: item key whose file stem is the id.

    Returns:
        the selected items.

    Raises:
        DataFileError: when an id has no item.
    """
    present = {Path(item[key]).stem for item in datalist}
    missing = [i for i in ids if i not in present]
    if missing:
        shown = ", ".join(missing[:5]) + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else "")
        raise DataFileError(f"{len(missing)} id(s) from {source} have no image/label pair: {shown}.")
    wanted = set(ids)
    return [item for item in datalist if Path(item[key]).stem in wanted]


def split_train_val(
    datalist: Sequence[dict], val_fraction: float = 0.2, seed: int = 0, group_key: str | None = None
) -> tuple[list[dict], list[dict]]:
    """Split a training datalist into disjoint training and validation parts, reproducibly.

    The same ``datalist``, ``val_fraction`` and ``seed`` always give the same split, on any machine
    (NumPy's PCG64 generator). With ``group_key``, items sharing that value (e.g. GLaS images of one
    patient) go to the same side, so validation never sees a patient seen in training.

    Args:
        datalist: the items to split; their order is kept inside each part.
        val_fraction: fraction of items (or of groups) for validation, in ``(0, 1)``; at least one
            item (group) is put on each side.
        seed: random seed.
        group_key: optional item key whose value defines groups kept together.

    Returns:
        ``(train, validation)`` lists of the original items.

    Raises:
        ValueError: when ``val_fraction`` is outside ``(0, 1)`` or there are fewer than two items (groups).
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")
    groups: list[Hashable] = [item[group_key] for item in datalist] if group_key else list(range(len(datalist)))
    unique = list(dict.fromkeys(groups))
    if len(unique) < 2:
        raise ValueError(f"cannot split {len(unique)} item(s)/group(s) into training and validation parts.")
    n_val = min(max(int(round(val_fraction * len(unique))), 1), len(unique) - 1)
    order = np.random.default_rng(seed).permutation(len(unique))
    val_groups = {unique[i] for i in order[:n_val]}
    train = [item for item, g in zip(datalist, groups) if g not in val_groups]
    val = [item for item, g in zip(datalist, groups) if g in val_groups]
    return train, val


def make_splits(
    train_list: Sequence[dict],
    test_list: Sequence[dict],
    val_fraction: float = 0.2,
    seed: int = 0,
    paper_protocol: bool = False,
    group_key: str | None = None,
) -> dict[str, list[dict]]:
    """The training, validation (checkpoint selection) and test datalists of one experiment.

    By default the validation set is carved out of ``train_list`` with :func:`split_train_val`, so
    the test set is only ever used for the final report.

    ``paper_protocol=True`` reproduces the reference MaskSup code, which validated on the test set:
    ``validation = test`` and the whole ``train_list`` is trained on. It is not the default because
    choosing the checkpoint (or early stopping) on the test set leaks test information into the
    model selection and inflates the reported test scores; use it only to compare with the paper.

    Args:
        train_list: the data set's training items.
        test_list: the data set's test items.
        val_fraction: fraction of ``train_list`` held out for validation (ignored with ``paper_protocol``).
        seed: random seed of the split.
        paper_protocol: validate on the test set, as the reference code did.
        group_key: optional item key kept together by the split (e.g. a patient id).

    Returns:
        ``{"train": [...], "validation": [...], "test": [...]}``.
    """
    if paper_protocol:
        return {"train": list(train_list), "validation": list(test_list), "test": list(test_list)}
    train, val = split_train_val(train_list, val_fraction=val_fraction, seed=seed, group_key=group_key)
    return {"train": train, "validation": val, "test": list(test_list)}
