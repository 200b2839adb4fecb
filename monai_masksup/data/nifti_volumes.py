"""OCT volumes stored as NIfTI files: one image folder and an optional label folder with matching names."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import DataFileError
from .layout import list_image_files, natural_key

__all__ = ["NIFTI_VOLUMES_LAYOUT", "nifti_stem", "index_nifti_volumes"]

NIFTI_VOLUMES_LAYOUT = "<image_dir>/<name>.nii[.gz] and, for labelled volumes, <label_dir>/<name>.nii[.gz]"
_NIFTI_SUFFIXES = (".nii", ".gz")


def nifti_stem(path: str | os.PathLike) -> str:
    """The volume name of a NIfTI file: ``a.nii.gz`` and ``a.nii`` both give ``a``."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _list_nifti(folder: str | os.PathLike, role: str) -> dict[str, Path]:
    files = list_image_files(
        folder, f"NIfTI OCT {role}s", NIFTI_VOLUMES_LAYOUT, "your export (any NIfTI writer)", _NIFTI_SUFFIXES
    )
    index: dict[str, Path] = {}
    for f in files:
        if not f.name.lower().endswith((".nii", ".nii.gz")):
            continue
        key = nifti_stem(f)
        if key in index:
            raise DataFileError(f"two NIfTI {role} files share the name '{key}': '{index[key]}' and '{f}'.")
        index[key] = f
    if not index:
        raise DataFileError(
            f"no '.nii' or '.nii.gz' {role} file in '{folder}'. Expected layout: {NIFTI_VOLUMES_LAYOUT}."
        )
    return index


def _nifti_shape(path: Path) -> tuple[int, ...]:
    import nibabel as nib

    try:
        return tuple(int(n) for n in nib.load(path).shape)  # header only: the data is loaded lazily
    except Exception as e:  # nibabel raises several types for damaged headers
        raise DataFileError(f"cannot read the NIfTI header of '{path}': {e}") from e


def index_nifti_volumes(
    image_dir: str | os.PathLike, label_dir: str | os.PathLike | None = None, validate: bool = True
) -> list[dict]:
    """Index OCT volumes stored as NIfTI, read later with MONAI's ``NibabelReader``.

    The B-scans must be stacked along the last spatial axis, as in the RETOUCH volumes, so the same
    B-scan slicing (:func:`~monai_masksup.data.oct_bscan_dataset`) applies: ``(C, width, depth, n_bscans)``.

    Args:
        image_dir: folder of image volumes.
        label_dir: folder of label volumes with the same names (``.nii`` and ``.nii.gz`` may be mixed), or
            ``None`` for unlabelled volumes.
        validate: read every header and check that image and label have the same shape.

    Returns:
        ``[{"image": path, "label": path?, "volume": name, "subject": name}, ...]`` sorted by name.

    Raises:
        DatasetLayoutError: when a folder is missing or holds no NIfTI file.
        DataFileError: naming the file for an unpaired image or label, an unreadable header or a shape mismatch.
    """
    images = _list_nifti(image_dir, "image")
    labels = _list_nifti(label_dir, "label") if label_dir is not None else None
    if labels is not None:
        for key, path in images.items():
            if key not in labels:
                raise DataFileError(f"NIfTI volume '{path}' has no label: expected '{key}.nii[.gz]' in '{label_dir}'.")
        for key, path in labels.items():
            if key not in images:
                raise DataFileError(f"NIfTI label '{path}' has no image: expected '{key}.nii[.gz]' in '{image_dir}'.")
    items = []
    for key in sorted(images, key=natural_key):
        item = {"image": str(images[key]), "volume": key, "subject": key}
        if labels is not None:
            item["label"] = str(labels[key])
        if validate:
            shape = _nifti_shape(images[key])
            if labels is not None:
                label_shape = _nifti_shape(labels[key])
                if label_shape != shape:
                    raise DataFileError(
                        f"NIfTI volume shape mismatch: '{images[key]}' is {shape}, '{labels[key]}' is {label_shape}."
                    )
        items.append(item)
    return items
