"""The GLaS bundle trains on an export layout (``{train,test}/{img,labelcol}``) as its README promises.

An export has no ``Grade.csv``: the bundle must not ask for grades there, and its validation split then goes
per image instead of per patient. The Warwick layout keeps the patient-wise split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from monai.bundle import ConfigParser

from monai_masksup.data import make_demo_glas
from tests.bundles.conftest import GLAS_BUNDLE, configs
from tests.data.image_files import write_grey, write_smooth_rgb


def _parsed(dataset_dir: Path, bundle_root: Path, key: str):
    parser = ConfigParser()
    parser.read_config(configs(GLAS_BUNDLE, "train.json"))
    parser["bundle_root"] = str(bundle_root)
    parser["dataset_dir"] = str(dataset_dir)
    return parser.get_parsed_content(key)


@pytest.fixture(scope="module")
def glas_export(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("glas_export")
    mask = np.zeros((64, 64), np.uint8)
    mask[10:40, 20:50] = 255
    for split, count in (("train", 5), ("test", 2)):
        for i in range(count):
            write_smooth_rgb(root / split / "img" / f"{i}.png", height=64, width=64)
            write_grey(root / split / "labelcol" / f"{i}.png", mask)
    return root


def test_an_export_layout_gives_training_and_validation_lists(glas_export, tmp_path):
    splits = _parsed(glas_export, tmp_path, "splits")
    train, val = splits["train"], splits["validation"]
    assert train and val
    names = {Path(item["image"]).name for item in train + val}
    assert names == {f"{i}.png" for i in range(5)}
    assert not {item["image"] for item in train} & {item["image"] for item in val}
    assert all("patient_id" not in item for item in train + val)


def test_the_warwick_layout_keeps_patients_on_one_side(tmp_path):
    root = tmp_path / "warwick"
    make_demo_glas(root, n_train=6, n_test=2)
    splits = _parsed(root, tmp_path, "splits")
    train_patients = {item["patient_id"] for item in splits["train"]}
    val_patients = {item["patient_id"] for item in splits["validation"]}
    assert train_patients and val_patients
    assert not train_patients & val_patients
