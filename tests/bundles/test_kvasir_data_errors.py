"""Data errors of the polyp bundle as a user meets them: ``python -m monai.bundle run`` on broken data sets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_masksup.data import make_synthetic_polyps
from tests.bundles.conftest import KVASIR_BUNDLE, cli_args, configs, subprocess_env
from tests.data.image_files import jpeg_scan_start, overwrite

# large frames (Kvasir-SEG has 1920x1072 ones): CacheDataset's workers are still resampling them when an
# error ends the run, the condition of the SIGABRT of issue #12 (defect 5)
LARGE_SIZE, N_LARGE = (1024, 1280), 8


def _write_large_pair(images: Path, masks: Path, name: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0 : LARGE_SIZE[0], 0 : LARGE_SIZE[1]]
    base = np.stack([rows * 200 // LARGE_SIZE[0], cols * 200 // LARGE_SIZE[1], (rows + cols) % 97], axis=-1)
    Image.fromarray((base + rng.integers(0, 50, base.shape)).astype(np.uint8)).save(images / f"{name}.jpg")
    mask = np.zeros(LARGE_SIZE, np.uint8)
    mask[300:700, 400:900] = 255
    Image.fromarray(mask).convert("RGB").save(masks / f"{name}.jpg")


@pytest.fixture
def polyp_data(tmp_path):
    """A Kvasir-SEG / CVC-ClinicDB layout: 4 small synthetic pairs, ``N_LARGE`` large Kvasir pairs, 3 CVC frames."""
    root = make_synthetic_polyps(tmp_path / "data", n_kvasir=4, n_cvc=3, size=(64, 64), n_cvc_test=1)
    kvasir = Path(root) / "Kvasir-SEG"
    for i in range(N_LARGE):
        _write_large_pair(kvasir / "images", kvasir / "masks", f"large{i:02d}", seed=i)
    return Path(root)


def _run_bundle(data: Path, tmp_path: Path, **overrides) -> subprocess.CompletedProcess:
    args = {
        "bundle_root": str(tmp_path / "bundle"),
        "kvasir_dir": str(data / "Kvasir-SEG"),
        "cvc_dir": str(data / "CVC-ClinicDB"),
        "cvc_test_ids": str(data / "splits" / "cvc_test.txt"),
        "epochs": 1,
        **overrides,
    }
    cmd = [sys.executable, "-m", "monai.bundle", "run"]
    cmd += ["--config_file", str(configs(KVASIR_BUNDLE, "train.json", "demo.json"))]
    cmd += ["--meta_file", str(KVASIR_BUNDLE / "configs" / "metadata.json")]
    cmd += ["--logging_file", str(KVASIR_BUNDLE / "configs" / "logging.conf")] + cli_args(args)
    return subprocess.run(
        cmd, capture_output=True, text=True, env=subprocess_env(), cwd=str(KVASIR_BUNDLE), timeout=300
    )


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.mark.slow
def test_grey_jpeg_among_rgb_exits_with_status_1_naming_the_file(polyp_data, tmp_path):
    grey = polyp_data / "Kvasir-SEG" / "images" / "large01.jpg"
    Image.open(grey).convert("L").save(grey)
    result = _run_bundle(polyp_data, tmp_path, num_workers=4)
    assert "terminate called" not in result.stderr
    assert result.returncode == 1, result.stderr[-3000:]
    last = _last_line(result.stderr)
    assert last.startswith(f"monai_masksup: DataFileError: image '{grey}' arrived with 1 channel(s)"), last
    assert "JPG file is stored as a grey image" in last and "TiffFileReader" not in last


@pytest.mark.slow
def test_missing_data_set_ends_with_a_line_naming_the_folder(polyp_data, tmp_path):
    missing = tmp_path / "no-such-folder"
    result = _run_bundle(polyp_data, tmp_path, kvasir_dir=str(missing))
    assert result.returncode == 1
    last = _last_line(result.stderr)
    assert last.startswith("monai_masksup: DatasetLayoutError: Kvasir-SEG: folder"), last
    assert f"'{missing / 'images'}' does not exist" in last and "Download the data" in last


@pytest.mark.slow
def test_mid_stream_damaged_jpeg_ends_the_run_with_a_line_naming_the_file(polyp_data, tmp_path):
    damaged = sorted((polyp_data / "Kvasir-SEG" / "images").glob("*.jpg"))[0]
    offset = jpeg_scan_start(damaged.read_bytes()) + 50
    overwrite(damaged, offset, b"\xff\xe4\x00\x00")
    result = _run_bundle(polyp_data, tmp_path)
    assert result.returncode == 1
    assert _last_line(result.stderr).startswith(
        f"monai_masksup: DataFileError: JPEG file '{damaged}' is damaged at byte {offset}: marker 0xFFE4"
    )
