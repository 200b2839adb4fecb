"""``python -m monai_masksup.demo`` runs the GLaS bundle end to end and says where its outputs are."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from monai_masksup.demo import run_demo
from tests.bundles.conftest import subprocess_env
from tests.conftest import PROJECT_ROOT


@pytest.mark.slow
def test_demo_command_trains_evaluates_and_infers(tmp_path):
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "monai_masksup.demo", "--output_dir", str(out)]
    cmd += ["--epochs", "1", "--n_train", "6", "--n_test", "2", "--image_size", "32"]
    proc = subprocess.run(cmd, cwd=str(tmp_path), env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    bundle_root = out / "masksup_glas"
    assert f"best checkpoint     : {bundle_root / 'models' / 'model.pt'}" in proc.stdout
    assert (bundle_root / "models" / "model.pt").is_file()
    assert (out / "glas_synthetic" / "Grade.csv").is_file()
    for name in ("metrics.json", "metrics.csv", "robustness.png", "robustness_examples.png"):
        assert (bundle_root / "eval" / name).is_file()
    masks = sorted((bundle_root / "eval" / "predictions").glob("*_mask.png"))
    assert [m.name for m in masks] == ["testA_1_mask.png", "testB_1_mask.png"]
    with Image.open(masks[0]) as mask:
        assert mask.size == (128, 96)  # the synthetic images' original size, not the network's 32 x 32
        assert set(np.unique(np.asarray(mask))) <= {0, 255}


@pytest.mark.slow
def test_kvasir_demo_trains_evaluates_and_infers_on_synthetic_polyps(tmp_path):
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "monai_masksup.demo", "--bundle", "kvasir", "--output_dir", str(out)]
    cmd += ["--epochs", "1", "--n_train", "6", "--n_test", "2", "--image_size", "32"]
    proc = subprocess.run(cmd, cwd=str(tmp_path), env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    bundle_root = out / "masksup_kvasir"
    assert f"best checkpoint     : {bundle_root / 'models' / 'model.pt'}" in proc.stdout
    assert (bundle_root / "models" / "model.pt").is_file()
    # n_train 6 = 4 Kvasir-SEG + 2 CVC-ClinicDB frames; the n_test 2 test frames are CVC frames 3 and 4
    data = out / "polyps_synthetic"
    assert len(list((data / "Kvasir-SEG" / "images").glob("*.jpg"))) == 4
    assert (data / "splits" / "cvc_test.txt").read_text() == "3\n4\n"
    report = json.loads((bundle_root / "eval" / "metrics.json").read_text())
    assert [row["image"] for row in report["per_image"]] == ["3.tif", "4.tif"]
    for metric in ("iou", "dice"):
        assert 0.0 <= report["summary"][f"{metric}_mean"] <= 1.0
        assert all(0.0 <= row[metric] <= 1.0 for row in report["per_image"])
    for name in ("robustness.png", "robustness_examples.png", "robustness.csv"):
        assert (bundle_root / "eval" / name).is_file()
    masks = sorted((bundle_root / "eval" / "predictions").glob("*_mask.png"))
    assert [m.name for m in masks] == ["3_mask.png", "4_mask.png"]
    for path in masks:
        with Image.open(path) as mask:
            assert mask.size == (128, 96)  # the synthetic frames' original size, not the network's 32 x 32
            assert set(np.unique(np.asarray(mask))) <= {0, 255}


def test_demo_refuses_an_unknown_bundle(tmp_path):
    with pytest.raises(ValueError, match="glas"):
        run_demo(output_dir=tmp_path, bundle="duke")


def test_kvasir_demo_refuses_a_folder_without_the_bundle(tmp_path):
    with pytest.raises(FileNotFoundError, match="masksup_kvasir"):
        run_demo(output_dir=tmp_path, bundle="kvasir", bundle_dir=tmp_path / "nowhere")


def test_demo_refuses_a_folder_without_the_bundle(tmp_path):
    with pytest.raises(FileNotFoundError, match="configs/train.json"):
        run_demo(output_dir=tmp_path, bundle_dir=tmp_path / "nowhere")


def test_default_bundle_dir_is_the_checkout_bundle():
    from monai_masksup.demo import DEFAULT_BUNDLE_DIR

    assert DEFAULT_BUNDLE_DIR == PROJECT_ROOT / "bundles" / "masksup_glas"


def test_each_demo_bundle_is_a_checkout_bundle():
    from monai_masksup.demo import DEMOS

    assert DEMOS["glas"].bundle_dir == PROJECT_ROOT / "bundles" / "masksup_glas"
    assert DEMOS["kvasir"].bundle_dir == PROJECT_ROOT / "bundles" / "masksup_kvasir"
    for demo in DEMOS.values():
        assert (demo.bundle_dir / "configs" / "demo.json").is_file()


def _no_bundles_anywhere(monkeypatch, tmp_path):
    import monai_masksup.demo as demo

    monkeypatch.delenv(demo.BUNDLES_ENV, raising=False)
    monkeypatch.setattr(demo, "BUNDLES_DIR", tmp_path / "checkout" / "bundles")
    monkeypatch.setattr(demo, "_INSTALLED_BUNDLES_DIR", tmp_path / "site-packages" / "monai_masksup" / "_bundles")
    monkeypatch.chdir(tmp_path)
    return demo


def test_bundles_folder_named_by_the_environment_comes_first(monkeypatch, tmp_path):
    demo = _no_bundles_anywhere(monkeypatch, tmp_path)
    own = tmp_path / "my_bundles"
    (own / "masksup_glas" / "configs").mkdir(parents=True)
    (own / "masksup_glas" / "configs" / "train.json").write_text("{}")
    monkeypatch.setenv(demo.BUNDLES_ENV, str(own))
    assert demo.find_bundle_dir("masksup_glas") == own / "masksup_glas"


def test_bundles_in_the_current_folder_are_found(monkeypatch, tmp_path):
    demo = _no_bundles_anywhere(monkeypatch, tmp_path)
    (tmp_path / "bundles" / "masksup_kvasir" / "configs").mkdir(parents=True)
    (tmp_path / "bundles" / "masksup_kvasir" / "configs" / "train.json").write_text("{}")
    assert demo.find_bundle_dir("masksup_kvasir") == tmp_path / "bundles" / "masksup_kvasir"


def test_missing_bundles_are_one_line_naming_where_they_were_looked_for(monkeypatch, tmp_path, capsys):
    demo = _no_bundles_anywhere(monkeypatch, tmp_path)
    assert demo.main(["--output_dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(tmp_path / "site-packages" / "monai_masksup" / "_bundles" / "masksup_glas") in err
    assert str(tmp_path / "bundles" / "masksup_glas") in err
    assert demo.BUNDLES_ENV in err and "--bundle_dir" in err
    assert not (tmp_path / "out").exists()


def test_every_bundle_config_and_doc_is_packaged():
    # setup.py copies bundles/ into monai_masksup/_bundles with these patterns; a new file type would be left out
    import fnmatch
    import re

    setup_text = (PROJECT_ROOT / "setup.py").read_text()
    patterns = re.findall(r'"(\*/[^"]+)"', setup_text.split("package_data=")[1].split("\n")[0])
    assert patterns
    bundles = PROJECT_ROOT / "bundles"
    shipped = [
        p for p in bundles.rglob("*")
        if p.is_file() and p.relative_to(bundles).parts[1] in ("configs", "docs", "LICENSE")
    ]
    assert shipped
    for path in shipped:
        rel = path.relative_to(bundles).as_posix()
        assert any(fnmatch.fnmatch(rel, pattern) for pattern in patterns), f"{rel} is not packaged"
