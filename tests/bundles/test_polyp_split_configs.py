"""train.json and inference.json of the polyp bundle hold out the same CVC-ClinicDB test frames (generated data)."""

from __future__ import annotations

import pytest
from monai.bundle import ConfigParser

from monai_masksup.data import make_synthetic_polyps
from tests.bundles.conftest import KVASIR_BUNDLE, configs


@pytest.fixture(scope="module")
def polyps(tmp_path_factory):
    return make_synthetic_polyps(tmp_path_factory.mktemp("polyps"), n_kvasir=3, n_cvc=20, n_cvc_test=3, size=(32, 32))


def _parsed(name: str, overrides: dict, key: str):
    parser = ConfigParser()
    parser.read_config(configs(KVASIR_BUNDLE, name))
    for k, v in overrides.items():
        parser[k] = v
    return parser.get_parsed_content(key)


def _test_frames(overrides: dict) -> tuple[list[str], list[str]]:
    trained_on = [item["image"] for item in _parsed("train.json", overrides, "train_items")]
    tested_on = [item["image"] for item in _parsed("train.json", overrides, "test_datalist")]
    inferred_on = [str(p) for p in _parsed("inference.json", overrides, "input_images")]
    assert tested_on == inferred_on
    assert not set(trained_on) & set(tested_on)
    return tested_on, trained_on


@pytest.mark.parametrize("seed", [0, 3])
def test_seeded_default_split_is_the_same_in_training_and_inference(polyps, tmp_path, seed):
    dirs = {"kvasir_dir": str(polyps / "Kvasir-SEG"), "cvc_dir": str(polyps / "CVC-ClinicDB")}
    tested_on, trained_on = _test_frames({**dirs, "seed": seed, "bundle_root": str(tmp_path)})
    assert len(tested_on) == 2  # a tenth of 20 CVC-ClinicDB frames
    assert len(trained_on) == 3 + 18


def test_split_file_is_the_same_in_training_and_inference(polyps, tmp_path):
    dirs = {"kvasir_dir": str(polyps / "Kvasir-SEG"), "cvc_dir": str(polyps / "CVC-ClinicDB")}
    split_file = str(polyps / "splits" / "cvc_test.txt")  # frames 18, 19, 20
    tested_on, _ = _test_frames({**dirs, "cvc_test_ids": split_file, "bundle_root": str(tmp_path)})
    assert tested_on == [str(polyps / "CVC-ClinicDB" / "Original" / f"{n}.tif") for n in (18, 19, 20)]


def test_generated_demo_set_is_split_the_same_in_training_and_inference(tmp_path):
    tested_on, _ = _test_frames({"bundle_root": str(tmp_path)})
    assert tested_on and all("/eval/demo_data/polyps_synthetic/CVC-ClinicDB/" in p for p in tested_on)
