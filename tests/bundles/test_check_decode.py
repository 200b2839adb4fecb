"""``check_decode``: both bundles decode every image before training when asked, catching damage the cheap checks miss.

A JPEG whose compressed data is damaged without marker damage passes the truncation and marker checks; only a
full decode finds it (issue #12, defect 4). The option is off by default: it costs one decode of every image.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from monai.bundle import ConfigParser
from PIL import Image

from monai_masksup.data import DataFileError, make_synthetic_polyps
from tests.bundles.conftest import GLAS_BUNDLE, KVASIR_BUNDLE, cli_args, configs, exception_chain, subprocess_env
from tests.data.image_files import write_grey, write_smooth_rgb, write_zeroed_jpeg, zero_jpeg_scan


@pytest.fixture(scope="module")
def polyps(tmp_path_factory) -> Path:
    """Kvasir-SEG + CVC-ClinicDB layouts whose Kvasir image ``1`` is damaged in the middle of its scan."""
    root = Path(make_synthetic_polyps(tmp_path_factory.mktemp("polyps"), n_kvasir=3, n_cvc=4, n_cvc_test=1))
    image = sorted((root / "Kvasir-SEG" / "images").glob("*.jpg"))[1]
    with Image.open(image) as frame:
        width, height = frame.size
    # a photograph-like gradient: the generated frames are so flat that zeroed bytes still decode as valid codes
    write_smooth_rgb(image, height=height, width=width)
    zero_jpeg_scan(image)
    return root


@pytest.fixture(scope="module")
def glas_export(tmp_path_factory) -> Path:
    """A GLaS export layout (``{train,test}/{img,labelcol}``) of JPEG images, ``test/img/1.jpg`` damaged.

    The Warwick release holds BMP files, which have no compressed data to damage; JPEG exports do.
    """
    root = tmp_path_factory.mktemp("glas")
    mask = np.zeros((96, 96), np.uint8)
    mask[20:60, 30:70] = 255
    for split in ("train", "test"):
        for i in range(3):
            write_smooth_rgb(root / split / "img" / f"{i}.jpg")
            write_grey(root / split / "labelcol" / f"{i}.png", mask)
    write_zeroed_jpeg(root / "test" / "img" / "1.jpg")
    return root


def _damaged(data: Path, bundle: Path) -> Path:
    if bundle == KVASIR_BUNDLE:
        return sorted((data / "Kvasir-SEG" / "images").glob("*.jpg"))[1]
    return data / "test" / "img" / "1.jpg"


def _overrides(data: Path, bundle: Path) -> dict:
    if bundle == KVASIR_BUNDLE:
        return {"kvasir_dir": str(data / "Kvasir-SEG"), "cvc_dir": str(data / "CVC-ClinicDB")}
    return {"dataset_dir": str(data)}


def _indexed(bundle: Path, overrides: dict, tmp_path: Path) -> list:
    """The datalist holding the damaged file: Kvasir's training items, GLaS's test items."""
    parser = ConfigParser()
    parser.read_config(configs(bundle, "train.json"))
    for key, value in {"bundle_root": str(tmp_path), **overrides}.items():
        parser[key] = value
    return parser.get_parsed_content("train_items" if bundle == KVASIR_BUNDLE else "test_datalist")


@pytest.mark.parametrize("bundle", [GLAS_BUNDLE, KVASIR_BUNDLE], ids=["glas", "kvasir"])
@pytest.mark.parametrize("flag", [True, "true"])  # the command line gives the word
def test_check_decode_stops_on_a_damaged_jpeg_naming_it(bundle, flag, polyps, glas_export, tmp_path):
    data = polyps if bundle == KVASIR_BUNDLE else glas_export
    with pytest.raises(Exception) as raised:
        _indexed(bundle, {**_overrides(data, bundle), "check_decode": flag}, tmp_path)
    errors = [e for e in exception_chain(raised.value) if isinstance(e, DataFileError)]
    assert errors, raised.value
    assert f"JPEG file '{_damaged(data, bundle)}' is damaged" in str(errors[0])


@pytest.mark.parametrize("bundle", [GLAS_BUNDLE, KVASIR_BUNDLE], ids=["glas", "kvasir"])
def test_without_check_decode_the_damaged_jpeg_passes_silently(bundle, polyps, glas_export, tmp_path, capfd):
    data = polyps if bundle == KVASIR_BUNDLE else glas_export
    items = _indexed(bundle, _overrides(data, bundle), tmp_path)
    assert str(_damaged(data, bundle)) in [item["image"] for item in items]
    assert "Corrupt JPEG" not in capfd.readouterr().out


@pytest.mark.slow
def test_kvasir_bundle_run_with_check_decode_ends_with_the_file_named(polyps, tmp_path):
    args = {"bundle_root": str(tmp_path / "bundle"), **_overrides(polyps, KVASIR_BUNDLE), "check_decode": "True"}
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(configs(KVASIR_BUNDLE, "train.json"))]
    cmd += ["--meta_file", str(KVASIR_BUNDLE / "configs" / "metadata.json")]
    cmd += ["--logging_file", str(KVASIR_BUNDLE / "configs" / "logging.conf")] + cli_args(args)
    result = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), cwd=str(tmp_path), timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    damaged = _damaged(polyps, KVASIR_BUNDLE)
    assert last.startswith(f"monai_masksup: DataFileError: JPEG file '{damaged}' is damaged"), last
    assert not (tmp_path / "bundle" / "models").exists()
