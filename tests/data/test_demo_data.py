"""glas_or_demo / polyps_or_demo: the configured data set, or the generated demo set made once and announced."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from monai_masksup.data import DatasetLayoutError, glas_or_demo, index_glas, polyps_or_demo


def test_configured_glas_folder_is_returned_as_given_even_when_missing(tmp_path):
    # a missing folder is the indexer's to report (naming it); it never falls back to generated data
    assert glas_or_demo(str(tmp_path / "GlaS"), tmp_path / "demo") == str(tmp_path / "GlaS")
    assert not (tmp_path / "demo").exists()


def test_empty_string_is_not_taken_for_an_unconfigured_data_set(tmp_path):
    with pytest.raises(ValueError, match="dataset_dir"):
        glas_or_demo("", tmp_path / "demo")


def test_unconfigured_glas_generates_the_demo_set_once_and_says_so(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="monai_masksup.data.demo_data"):
        folder = Path(glas_or_demo(None, tmp_path / "demo"))
    assert folder == tmp_path / "demo" / "glas_synthetic"
    assert (
        f"no data set configured: training on the generated demo set in {folder}; pass --dataset_dir to use GlaS"
        in caplog.text
    )
    assert len(index_glas(folder, subset="train", validate=False)) == 24
    assert len(index_glas(folder, subset="test", validate=False)) == 6
    stamp = (folder / "Grade.csv").stat().st_mtime_ns
    assert glas_or_demo(None, tmp_path / "demo", action="inference") == str(folder)
    assert (folder / "Grade.csv").stat().st_mtime_ns == stamp  # reused, not regenerated
    assert not list((tmp_path / "demo").glob(".*.tmp"))


def test_half_written_demo_folder_is_reported_not_reused(tmp_path):
    (tmp_path / "demo" / "glas_synthetic").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match="glas_synthetic.*Grade.csv"):
        glas_or_demo(None, tmp_path / "demo")


def test_unconfigured_polyps_generate_both_data_sets(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="monai_masksup.data.demo_data"):
        dirs = polyps_or_demo(None, None, tmp_path / "demo")
    root = tmp_path / "demo" / "polyps_synthetic"
    assert dirs == {"kvasir_dir": str(root / "Kvasir-SEG"), "cvc_dir": str(root / "CVC-ClinicDB")}
    assert len(list((root / "Kvasir-SEG" / "images").glob("*.jpg"))) == 16
    assert len(list((root / "CVC-ClinicDB" / "Original").glob("*.tif"))) == 14
    assert "pass --kvasir_dir and --cvc_dir" in caplog.text


def test_partly_configured_polyp_data_is_refused(tmp_path):
    with pytest.raises(ValueError, match="--cvc_dir is missing"):
        polyps_or_demo(str(tmp_path / "Kvasir-SEG"), None, tmp_path / "demo")
    with pytest.raises(ValueError, match="--kvasir_dir is missing"):
        polyps_or_demo(None, str(tmp_path / "CVC-ClinicDB"), tmp_path / "demo")
    assert not (tmp_path / "demo").exists()


def test_inference_needs_only_the_cvc_folder(tmp_path):
    dirs = polyps_or_demo(None, str(tmp_path / "CVC-ClinicDB"), tmp_path / "demo", need_kvasir=False)
    assert dirs == {"kvasir_dir": None, "cvc_dir": str(tmp_path / "CVC-ClinicDB")}


def _file_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("bundle", ["glas", "kvasir"])
def test_demo_command_at_its_defaults_writes_the_bundles_demo_set(tmp_path, bundle):
    # `python -m monai_masksup.demo` and a bundle run without a data set use one generator: same files, same bytes
    from monai_masksup.demo import DEMOS

    if bundle == "glas":
        bundle_set = Path(glas_or_demo(None, tmp_path / "bundle"))
    else:
        bundle_set = Path(polyps_or_demo(None, None, tmp_path / "bundle")["cvc_dir"]).parent
    demo = DEMOS[bundle]
    demo.make(tmp_path / "demo" / demo.data_name, 24, 6, 0)
    demo_files = _file_bytes(tmp_path / "demo" / demo.data_name)
    assert demo.marker in demo_files and bundle_set.name == demo.data_name
    assert demo_files == _file_bytes(bundle_set)
