"""Without a data option the mission's command trains on the generated demo set and says so; a given folder never
falls back to it."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from monai_masksup.data import DatasetLayoutError
from tests.bundles.conftest import GLAS_BUNDLE, KVASIR_BUNDLE, bundle_run, configs, exception_chain, subprocess_env


def _layout_errors(info) -> list[str]:
    return [str(e) for e in exception_chain(info.value) if isinstance(e, DatasetLayoutError)]


@pytest.mark.slow
@pytest.mark.parametrize(
    "bundle, demo_folder, hint",
    [
        (GLAS_BUNDLE, "glas_synthetic", "pass --dataset_dir to use GlaS"),
        (KVASIR_BUNDLE, "polyps_synthetic", "pass --kvasir_dir and --cvc_dir to use Kvasir-SEG and CVC-ClinicDB"),
    ],
    ids=["glas", "kvasir"],
)
def test_command_without_data_option_trains_on_the_generated_demo_set(tmp_path, bundle, demo_folder, hint):
    # `python -m monai.bundle run --config_file <bundle>/configs/train.json`, from another folder, with only the
    # demo overlay and one epoch added so that the test is quick
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(configs(bundle, "train.json", "demo.json"))]
    cmd += ["--epochs", "1"]
    folder = tmp_path / "eval" / "demo_data" / demo_folder
    notice = f"no data set configured: training on the generated demo set in {folder}; {hint}"
    for attempt in range(2):
        proc = subprocess.run(cmd, cwd=str(tmp_path), env=subprocess_env(), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        log_lines = [line for line in proc.stdout.splitlines() if " - " in line]
        # the notice comes before any line of the run itself (only MONAI's logging set-up line precedes it)
        assert any(notice in line for line in log_lines[:2]), "\n".join(log_lines[:5])
        assert (tmp_path / "models" / "model.pt").is_file()
        if attempt == 0:
            files = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
            cmd += ["--overwrite", "True"]
    # the second run reused the generated set instead of writing it again
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == files


@pytest.mark.parametrize("make_empty", [False, True], ids=["missing", "empty"])
def test_given_glas_folder_that_is_missing_or_empty_is_an_error_not_a_fallback(tmp_path, make_empty):
    folder = tmp_path / "GlaS"
    if make_empty:
        folder.mkdir()
    with pytest.raises(Exception) as info:
        bundle_run(GLAS_BUNDLE, ["train.json", "demo.json"], bundle_root=str(tmp_path / "b"), dataset_dir=str(folder))
    messages = _layout_errors(info)
    assert messages and f"'{folder}'" in messages[0]
    assert not (tmp_path / "b" / "eval" / "demo_data").exists()


@pytest.mark.parametrize("make_empty", [False, True], ids=["missing", "empty"])
def test_given_polyp_folders_that_are_missing_or_empty_are_an_error_not_a_fallback(tmp_path, make_empty):
    kvasir, cvc = tmp_path / "Kvasir-SEG", tmp_path / "CVC-ClinicDB"
    if make_empty:
        kvasir.mkdir()
        cvc.mkdir()
    with pytest.raises(Exception) as info:
        bundle_run(
            KVASIR_BUNDLE,
            ["train.json", "demo.json"],
            bundle_root=str(tmp_path / "b"),
            kvasir_dir=str(kvasir),
            cvc_dir=str(cvc),
        )
    messages = _layout_errors(info)
    assert messages and "CVC-ClinicDB" in messages[0] and str(cvc) in messages[0]
    assert not (tmp_path / "b" / "eval" / "demo_data").exists()


def test_one_polyp_folder_alone_is_refused_not_completed_with_generated_data(tmp_path):
    with pytest.raises(Exception) as info:
        bundle_run(KVASIR_BUNDLE, ["train.json", "demo.json"], bundle_root=str(tmp_path / "b"), kvasir_dir=str(tmp_path))
    assert any("--cvc_dir is missing" in str(e) for e in exception_chain(info.value))
    assert not (tmp_path / "b" / "eval" / "demo_data").exists()


@pytest.mark.parametrize("bundle", [GLAS_BUNDLE, KVASIR_BUNDLE], ids=["glas", "kvasir"])
def test_inference_on_an_input_folder_generates_no_demo_set(tmp_path, bundle):
    from monai.bundle import ConfigParser
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    Image.new("RGB", (40, 30), (200, 120, 180)).save(folder / "frame.png")
    parser = ConfigParser()
    parser.read_config(configs(bundle, "inference.json"))
    parser["bundle_root"] = str(tmp_path / "b")
    parser["input_dir"] = str(folder)
    assert [p.name for p in parser.get_parsed_content("input_images")] == ["frame.png"]
    assert not (tmp_path / "b").exists()


def _parse(bundle, names, bundle_root):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(configs(bundle, *names))
    parser["bundle_root"] = str(bundle_root)
    return parser


@pytest.fixture
def demo_log(caplog, monkeypatch):
    """The demo-data log records; the logger is re-enabled in case a bundle run's ``fileConfig`` disabled it."""
    monkeypatch.setattr(logging.getLogger("monai_masksup.data.demo_data"), "disabled", False)
    caplog.set_level(logging.WARNING, logger="monai_masksup.data.demo_data")
    return caplog


_DEMO = {
    GLAS_BUNDLE: ("glas_synthetic", "pass --dataset_dir to use GlaS"),
    KVASIR_BUNDLE: ("polyps_synthetic", "pass --kvasir_dir and --cvc_dir to use Kvasir-SEG and CVC-ClinicDB"),
}


@pytest.mark.parametrize("bundle", [GLAS_BUNDLE, KVASIR_BUNDLE], ids=["glas", "kvasir"])
def test_train_json_alone_indexes_the_demo_set_and_says_so(tmp_path, bundle, demo_log):
    # the mission's command, `--config_file <bundle>/configs/train.json` with no demo overlay and no data option,
    # up to the datalists (LeViT-384 is never built)
    parser = _parse(bundle, ["train.json"], tmp_path)
    train, val = parser.get_parsed_content("train_datalist"), parser.get_parsed_content("val_datalist")
    assert train and val and all(Path(item["image"]).is_file() for item in train + val)
    demo_folder, hint = _DEMO[bundle]
    folder = tmp_path / "eval" / "demo_data" / demo_folder
    notice = f"no data set configured: training on the generated demo set in {folder}; {hint}"
    assert [r.getMessage() for r in demo_log.records] == [notice]
    assert parser["network_def"]["_target_"] == "monai_masksup.networks.LeViTUNet"


@pytest.mark.parametrize("bundle", [GLAS_BUNDLE, KVASIR_BUNDLE], ids=["glas", "kvasir"])
def test_evaluation_without_data_option_names_evaluation_in_the_notice(tmp_path, bundle, demo_log):
    parser = _parse(bundle, ["train.json", "evaluate.json"], tmp_path)
    assert parser.get_parsed_content("test_datalist")
    demo_folder, hint = _DEMO[bundle]
    folder = tmp_path / "eval" / "demo_data" / demo_folder
    notice = f"no data set configured: evaluation on the generated demo set in {folder}; {hint}"
    assert [r.getMessage() for r in demo_log.records] == [notice]
