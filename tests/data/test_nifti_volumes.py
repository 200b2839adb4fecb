from __future__ import annotations

import numpy as np
import pytest
from monai.transforms import Compose

from monai_masksup.data import DataFileError, DatasetLayoutError, index_nifti_volumes, oct_volume_transforms

from .oct_volumes import write_nifti


def _xyz(shape=(5, 4, 3)):
    return np.arange(np.prod(shape), dtype=np.float32).reshape(shape)


def test_pairs_by_name_across_nii_and_nii_gz_and_loads_with_nibabel(tmp_path):
    write_nifti(tmp_path / "img" / "eye2.nii.gz", _xyz())
    write_nifti(tmp_path / "img" / "eye10.nii", _xyz())
    label = np.zeros((5, 4, 3), dtype=np.uint8)
    label[4, 1, 2] = 2
    write_nifti(tmp_path / "lab" / "eye2.nii", label)
    write_nifti(tmp_path / "lab" / "eye10.nii.gz", label)
    items = index_nifti_volumes(tmp_path / "img", tmp_path / "lab")
    assert [(i["volume"], i["subject"]) for i in items] == [("eye2", "eye2"), ("eye10", "eye10")]
    out = Compose(oct_volume_transforms(reader="NibabelReader", num_classes=4, lower=0, upper=100))(items[0])
    assert out["image"].shape == (1, 5, 4, 3)  # nibabel's (x, y, z): B-scans on the last axis, as with ITK
    assert out["label"][0, 4, 1, 2].item() == 2
    assert out["image"][0, 4, 3, 2].item() == pytest.approx(1.0) and out["image"][0, 0, 0, 0].item() == 0.0


def test_unlabelled_volumes_without_label_dir(tmp_path):
    write_nifti(tmp_path / "img" / "a.nii.gz", _xyz())
    assert index_nifti_volumes(tmp_path / "img") == [
        {"image": str(tmp_path / "img" / "a.nii.gz"), "volume": "a", "subject": "a"}
    ]


def test_errors_name_the_file(tmp_path):
    write_nifti(tmp_path / "img" / "a.nii.gz", _xyz())
    write_nifti(tmp_path / "lab" / "b.nii.gz", _xyz())
    with pytest.raises(DataFileError, match=r"img/a\.nii\.gz' has no label"):
        index_nifti_volumes(tmp_path / "img", tmp_path / "lab")
    write_nifti(tmp_path / "lab" / "a.nii.gz", _xyz((5, 4, 2)))
    (tmp_path / "lab" / "b.nii.gz").unlink()
    mismatch = r"shape mismatch: '.*img/a\.nii\.gz' is \(5, 4, 3\), '.*lab/a\.nii\.gz' is \(5, 4, 2\)"
    with pytest.raises(DataFileError, match=mismatch):
        index_nifti_volumes(tmp_path / "img", tmp_path / "lab")
    (tmp_path / "img" / "c.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(DataFileError, match=r"c\.nii\.gz"):
        index_nifti_volumes(tmp_path / "img")
    with pytest.raises(DatasetLayoutError, match=r"nowhere' does not exist"):
        index_nifti_volumes(tmp_path / "nowhere")
