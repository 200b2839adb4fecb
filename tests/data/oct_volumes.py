"""Writers of tiny OCT volumes for the data tests (MetaImage through ITK, NIfTI through nibabel)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monai_masksup.data import write_metaimage_volume


def ramp_volume(shape=(3, 4, 5), offset: int = 0) -> np.ndarray:
    """A ``(z, y, x)`` uint8 volume whose voxel ``(k, r, c)`` holds ``offset + 20 k + 5 r + c`` (it tells its place)."""
    k, r, c = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    return (offset + 20 * k + 5 * r + c).astype(np.uint8)


def write_retouch_volume(folder: Path, image: np.ndarray, label: np.ndarray | None) -> None:
    """``<folder>/oct.mhd`` and, when given, ``<folder>/reference.mhd``."""
    write_metaimage_volume(image, folder / "oct.mhd")
    if label is not None:
        write_metaimage_volume(label, folder / "reference.mhd")


def write_nifti(path: Path, array_xyz: np.ndarray) -> None:
    """A NIfTI file holding ``array_xyz`` in nibabel's ``(x, y, z)`` order."""
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array_xyz, np.eye(4)), str(path))
