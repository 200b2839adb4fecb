"""``python -m monai_masksup.demo`` runs the GLaS bundle end to end and says where its outputs are."""

from __future__ import annotations

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


def test_demo_refuses_a_folder_without_the_bundle(tmp_path):
    with pytest.raises(FileNotFoundError, match="configs/train.json"):
        run_demo(output_dir=tmp_path, bundle_dir=tmp_path / "nowhere")


def test_default_bundle_dir_is_the_checkout_bundle():
    from monai_masksup.demo import DEFAULT_BUNDLE_DIR

    assert DEFAULT_BUNDLE_DIR == PROJECT_ROOT / "bundles" / "masksup_glas"
