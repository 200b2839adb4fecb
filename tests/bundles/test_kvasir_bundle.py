"""The polyp bundle on the real Kvasir-SEG and CVC-ClinicDB subsets in their native layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from PIL import Image

from tests.bundles.conftest import KVASIR_BUNDLE, TINY_RUN, bundle_run, configs
from tests.conftest import shared_data_dir

CVC_TRAIN, CVC_TEST = ["1", "21", "41", "61"], ["81", "101"]


@pytest.fixture(scope="module")
def polyp_setup(tmp_path_factory):
    kvasir = shared_data_dir("kvasir_seg")
    cvc = shared_data_dir("cvc_clinicdb")
    root = tmp_path_factory.mktemp("kvasir_bundle")
    kvasir_ids = (kvasir / "splits_medico2020" / "val.txt").read_text().split()[:4]
    files = {}
    for name, ids in (("kvasir_train_ids", kvasir_ids), ("cvc_train_ids", CVC_TRAIN), ("cvc_test_ids", CVC_TEST)):
        files[name] = root / f"{name}.txt"
        files[name].write_text("\n".join(ids) + "\n")
    common = {
        "bundle_root": str(root / "bundle"),
        "kvasir_dir": str(kvasir),
        "cvc_dir": str(cvc),
        **{k: str(v) for k, v in files.items()},
        **TINY_RUN,
    }
    return {"root": root, "common": common, "kvasir_ids": kvasir_ids, "cvc": cvc}


def _parser(common: dict, *names: str) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(configs(KVASIR_BUNDLE, *names))
    for key, value in common.items():
        parser[key] = value
    return parser


@pytest.mark.real_data
def test_split_files_select_kvasir_and_cvc_frames(polyp_setup):
    parser = _parser(polyp_setup["common"], "train.json", "demo.json")
    train = parser.get_parsed_content("train_items")
    test = parser.get_parsed_content("test_datalist")
    stems = lambda items: sorted(Path(i["image"]).stem for i in items)  # noqa: E731
    assert stems(train) == sorted(polyp_setup["kvasir_ids"] + CVC_TRAIN)
    assert stems(test) == sorted(CVC_TEST)
    assert all(Path(i["image"]).suffix == ".tif" for i in test)


@pytest.mark.real_data
def test_preprocessing_gives_colour_frames_and_binary_labels(polyp_setup):
    parser = _parser(polyp_setup["common"], "train.json", "demo.json")
    preprocessing = parser.get_parsed_content("validate#preprocessing")
    datalist = parser.get_parsed_content("train_items")
    for item in (datalist[0], datalist[-1]):  # a Kvasir JPEG and a CVC TIFF
        out = preprocessing(dict(item))
        image, label = out["image"], out["label"]
        assert tuple(image.shape) == (3, 64, 64) and tuple(label.shape) == (1, 64, 64)
        assert image.min() >= -1.0 and image.max() <= 1.0
        # a colour frame: the channels differ (a grey plane read from the CVC TIFF would not)
        assert float((image[0] - image[1]).abs().mean()) > 0.01
        assert set(torch.unique(label).tolist()) == {0.0, 1.0}


@pytest.mark.slow
@pytest.mark.real_data
def test_train_evaluate_infer_on_real_subsets(polyp_setup):
    common = polyp_setup["common"]
    bundle_root = Path(common["bundle_root"])
    bundle_run(KVASIR_BUNDLE, ["train.json", "demo.json"], epochs=2, **common)
    assert (bundle_root / "models" / "model.pt").is_file()
    assert (bundle_root / "models" / "checkpoint_epoch=2.pt").is_file()

    bundle_run(KVASIR_BUNDLE, ["train.json", "demo.json", "evaluate.json"], **common)
    report = json.loads((bundle_root / "eval" / "metrics.json").read_text())
    assert sorted(row["image"] for row in report["per_image"]) == ["101.tif", "81.tif"]
    for row in report["per_image"]:
        assert 0.0 <= row["iou"] <= 1.0 and 0.0 <= row["dice"] <= 1.0
    for name in ("robustness.json", "robustness.csv", "robustness.png", "robustness_examples.png"):
        assert (bundle_root / "eval" / name).is_file()

    bundle_run(KVASIR_BUNDLE, ["inference.json", "demo.json"], **common)
    pred_dir = bundle_root / "eval" / "predictions"
    assert sorted(p.name for p in pred_dir.glob("*.png")) == ["101_mask.png", "81_mask.png"]
    for frame in CVC_TEST:
        with Image.open(pred_dir / f"{frame}_mask.png") as mask:
            assert mask.size == (384, 288) and mask.mode == "L"  # CVC-ClinicDB frames are 384 x 288
            assert set(np.unique(np.asarray(mask))) <= {0, 255}


def test_pranet_overlay_indexes_the_pranet_layout(tmp_path):
    root = tmp_path / "PraNet"
    folders = {
        "train": (root / "TrainDataset" / "image", root / "TrainDataset" / "mask", ["1", "2", "3"]),
        "test": (root / "TestDataset" / "CVC-ClinicDB" / "images", root / "TestDataset" / "CVC-ClinicDB" / "masks", ["7"]),
    }
    for image_dir, mask_dir, names in folders.values():
        image_dir.mkdir(parents=True)
        mask_dir.mkdir(parents=True)
        for name in names:
            Image.new("RGB", (40, 30), (150, 90, 80)).save(image_dir / f"{name}.png")
            Image.new("L", (40, 30), 0).save(mask_dir / f"{name}.png")
    parser = _parser({"pranet_dir": str(root)}, "train.json", "pranet_layout.json")
    assert sorted(Path(i["image"]).name for i in parser.get_parsed_content("train_items")) == ["1.png", "2.png", "3.png"]
    test = parser.get_parsed_content("test_datalist")
    assert [Path(i["image"]).name for i in test] == ["7.png"] and "CVC-ClinicDB" in test[0]["image"]
