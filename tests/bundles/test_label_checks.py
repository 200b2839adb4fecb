"""Both bundles stop on the first pass over the data when a label would become empty, naming file, values and option."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from monai_masksup.data import DataFileError, make_synthetic_glas, make_synthetic_polyps
from tests.bundles.conftest import GLAS_BUNDLE, KVASIR_BUNDLE, TINY_RUN, bundle_run, exception_chain


def _data_errors(info) -> list[str]:
    return [str(e) for e in exception_chain(info.value) if isinstance(e, DataFileError)]


@pytest.fixture
def class_index_polyps(tmp_path):
    """Generated Kvasir-SEG + CVC-ClinicDB whose masks hold class indices {0, 1}, as annotation tools save them."""
    root = make_synthetic_polyps(tmp_path / "polyps", n_kvasir=4, n_cvc=4, n_cvc_test=1, size=(48, 48))
    for jpg in (root / "Kvasir-SEG" / "masks").glob("*.jpg"):
        with Image.open(jpg) as mask:
            indices = (np.asarray(mask.convert("L")) > 127).astype(np.uint8)
        Image.fromarray(indices).save(jpg.with_suffix(".png"))
        jpg.unlink()
    for tif in (root / "CVC-ClinicDB" / "Ground Truth").glob("*.tif"):
        tifffile.imwrite(tif, (tifffile.imread(tif) >= 128).astype(np.uint8), photometric="minisblack")
    return {
        "kvasir_dir": str(root / "Kvasir-SEG"),
        "cvc_dir": str(root / "CVC-ClinicDB"),
        "bundle_root": str(tmp_path / "bundle"),
        **TINY_RUN,
    }


def test_class_index_masks_with_the_default_threshold_stop_before_training(class_index_polyps):
    with pytest.raises(Exception) as info:
        bundle_run(KVASIR_BUNDLE, ["train.json", "demo.json"], epochs=1, **class_index_polyps)
    messages = _data_errors(info)
    assert messages, f"expected a DataFileError, got {info.value!r}"
    assert "Kvasir-SEG/masks/" in messages[0] or "Ground Truth/" in messages[0]
    assert "values {0, 1}" in messages[0] and "label_threshold" in messages[0]
    assert not (Path(class_index_polyps["bundle_root"]) / "models").exists()


@pytest.mark.slow
def test_class_index_masks_train_with_label_threshold_zero(class_index_polyps):
    bundle_run(KVASIR_BUNDLE, ["train.json", "demo.json"], epochs=1, label_threshold=0, **class_index_polyps)
    assert (Path(class_index_polyps["bundle_root"]) / "models" / "model.pt").is_file()


@pytest.fixture
def glas_with_an_empty_label(tmp_path):
    data = make_synthetic_glas(tmp_path / "glas", n_train=6, n_test_a=1, n_test_b=1, size=(48, 48))
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(data / "train_3_anno.bmp")
    return {"dataset_dir": str(data), "bundle_root": str(tmp_path / "bundle"), **TINY_RUN}


def test_empty_label_stops_glas_training_naming_the_allow_option(glas_with_an_empty_label):
    with pytest.raises(Exception) as info:
        bundle_run(GLAS_BUNDLE, ["train.json", "demo.json"], epochs=1, **glas_with_an_empty_label)
    messages = _data_errors(info)
    assert messages and "train_3_anno.bmp" in messages[0] and "allow_empty_labels" in messages[0]


@pytest.mark.slow
def test_empty_labels_train_where_allowed(glas_with_an_empty_label):
    # the command-line word "true" is read as a switch, like --amp
    bundle_run(GLAS_BUNDLE, ["train.json", "demo.json"], epochs=1, allow_empty_labels="true", **glas_with_an_empty_label)
    assert (Path(glas_with_an_empty_label["bundle_root"]) / "models" / "model.pt").is_file()
