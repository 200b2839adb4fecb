"""polyp_split: the Kvasir-SEG + CVC-ClinicDB training items and the held-out CVC-ClinicDB test frames."""

from __future__ import annotations

from pathlib import Path

import pytest

from monai_masksup.data import DataFileError, make_synthetic_polyps, polyp_split


@pytest.fixture(scope="module")
def polyps(tmp_path_factory):
    # 3 Kvasir-SEG pairs, CVC-ClinicDB frames 1..10
    return make_synthetic_polyps(tmp_path_factory.mktemp("polyps"), n_kvasir=3, n_cvc=10, n_cvc_test=2, size=(32, 32))


def _stems(items):
    return [Path(item["image"]).stem for item in items]


def test_split_file_fixes_the_test_frames_and_training_keeps_the_rest(polyps, tmp_path):
    ids = tmp_path / "cvc_test.txt"
    ids.write_text("4\n9\n")
    split = polyp_split(polyps / "CVC-ClinicDB", polyps / "Kvasir-SEG", cvc_test_ids=str(ids))
    assert _stems(split["test"]) == ["4", "9"]
    kvasir = sorted(p.stem for p in (polyps / "Kvasir-SEG" / "images").glob("*.jpg"))
    # Kvasir-SEG first, then the CVC-ClinicDB frames in frame order without the test frames
    assert _stems(split["train"]) == kvasir + ["1", "2", "3", "5", "6", "7", "8", "10"]


def test_default_holds_out_a_seeded_tenth_of_the_cvc_frames(polyps):
    split = polyp_split(polyps / "CVC-ClinicDB", polyps / "Kvasir-SEG", cvc_test_fraction=0.1, seed=0)
    again = polyp_split(polyps / "CVC-ClinicDB", polyps / "Kvasir-SEG", cvc_test_fraction=0.1, seed=0)
    assert split == again
    test = _stems(split["test"])
    assert len(test) == 1 and Path(split["test"][0]["image"]).suffix == ".tif"  # one tenth of 10 CVC frames
    cvc_train = [s for s in _stems(split["train"]) if s.isdigit()]
    assert sorted(cvc_train + test, key=int) == [str(n) for n in range(1, 11)]
    other_seeds = {tuple(_stems(polyp_split(polyps / "CVC-ClinicDB", seed=s)["test"])) for s in range(6)}
    assert len(other_seeds) > 1


def test_cvc_training_ids_drop_test_frames(polyps):
    split = polyp_split(polyps / "CVC-ClinicDB", cvc_train_ids=["1", "2", "3"], cvc_test_ids=["3", "10"])
    assert _stems(split["train"]) == ["1", "2"]  # no kvasir_dir: CVC-ClinicDB frames only
    assert _stems(split["test"]) == ["3", "10"]


def test_unknown_test_id_names_the_split_file(polyps, tmp_path):
    ids = tmp_path / "pranet_test.txt"
    ids.write_text("4\n99\n")
    with pytest.raises(DataFileError, match=r"pranet_test\.txt.*99"):
        polyp_split(polyps / "CVC-ClinicDB", cvc_test_ids=str(ids))
