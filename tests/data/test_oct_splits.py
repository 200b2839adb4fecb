from __future__ import annotations

import numpy as np
import pytest

from monai_masksup.data import (
    DataFileError,
    group_bscans_by_volume,
    index_duke_oct,
    oct_semi_supervised_splits,
    summarize_repeated_splits,
    volume_bscan_items,
    write_metaimage_volume,
)
from tests.conftest import shared_data_dir


def _bscans(n_subjects=6, per_subject=10):
    return [{"image": f"s{s}_{k}.png", "subject": s} for s in range(n_subjects) for k in range(per_subject)]


def test_parts_have_the_requested_sizes_and_cover_every_bscan_once():
    items = _bscans()
    for split in oct_semi_supervised_splits(items, n_pixel_labelled=7, image_label_share=0.25, test_fraction=1 / 3):
        sizes = {part: len(split[part]) for part in split}
        # 2 of 6 subjects test (20 B-scans); of the 40 training B-scans 7 pixel-labelled, round(0.25 * 33) = 8
        # image-labelled
        assert sizes == {"pixel": 7, "image": 8, "unlabelled": 25, "test": 20}
        names = [i["image"] for part in split.values() for i in part]
        assert sorted(names) == sorted(i["image"] for i in items)


def test_subjects_never_cross_the_train_test_cut():
    splits = oct_semi_supervised_splits(_bscans(), n_pixel_labelled=5, n_splits=10)
    assert len(splits) == 10
    test_sets = set()
    for split in splits:
        test = {i["subject"] for i in split["test"]}
        train = {i["subject"] for part in ("pixel", "image", "unlabelled") for i in split[part]}
        assert test and train and test.isdisjoint(train)
        test_sets.add(frozenset(test))
    assert len(test_sets) > 1  # the repeats differ


def test_same_seed_same_splits_other_seed_other_splits():
    items = _bscans()
    names = lambda splits: [[i["image"] for i in s["pixel"]] for s in splits]  # noqa: E731
    a = oct_semi_supervised_splits(items, n_pixel_labelled=5, n_splits=3, seed=7)
    b = oct_semi_supervised_splits(items, n_pixel_labelled=5, n_splits=3, seed=7)
    c = oct_semi_supervised_splits(items, n_pixel_labelled=5, n_splits=3, seed=8)
    assert names(a) == names(b) and names(a) != names(c)
    assert names(a)[1] == names(oct_semi_supervised_splits(items, n_pixel_labelled=5, n_splits=1, seed=8))[0]


def test_bad_options_and_too_few_bscans():
    with pytest.raises(DataFileError, match=r"fewer than n_pixel_labelled=24"):
        oct_semi_supervised_splits(_bscans(n_subjects=2, per_subject=11))
    with pytest.raises(ValueError, match="two subjects"):
        oct_semi_supervised_splits(_bscans(n_subjects=1), n_pixel_labelled=2)
    with pytest.raises(DataFileError, match=r"item 0 \(a\.png\) has no 'subject'"):
        oct_semi_supervised_splits([{"image": "a.png"}], n_pixel_labelled=1)
    with pytest.raises(ValueError, match="test_fraction"):
        oct_semi_supervised_splits(_bscans(), test_fraction=1.0)


def test_volume_bscans_expand_from_headers_and_group_back(tmp_path):
    write_metaimage_volume(np.zeros((4, 32, 32), np.uint8), tmp_path / "a" / "oct.mhd")
    write_metaimage_volume(np.zeros((2, 32, 32), np.uint8), tmp_path / "b" / "oct.mhd")
    volumes = [{"image": str(tmp_path / v / "oct.mhd"), "subject": v} for v in ("a", "b")]
    items = volume_bscan_items(volumes)
    assert [(i["subject"], i["bscan"]) for i in items] == [("a", 0), ("a", 1), ("a", 2), ("a", 3), ("b", 0), ("b", 1)]
    grouped = group_bscans_by_volume([items[3], items[5], items[1]])
    assert grouped == [dict(volumes[0], bscans=[1, 3]), dict(volumes[1], bscans=[1])]


def test_summary_is_mean_and_sample_std():
    summary = summarize_repeated_splits([0.7, 0.8, 0.9])
    assert summary["mean"] == pytest.approx(0.8) and summary["std"] == pytest.approx(0.1)
    assert summary["n"] == 3 and summary["text"] == "0.800 ± 0.100"
    assert summarize_repeated_splits([0.7, 0.9], ddof=0)["std"] == pytest.approx(0.1)
    assert summarize_repeated_splits([0.5])["std"] == 0.0
    with pytest.raises(ValueError, match=r"splits \[1\] are NaN"):
        summarize_repeated_splits([0.5, float("nan")])


@pytest.mark.real_data
def test_real_duke_split_keeps_each_subject_on_one_side():
    items = index_duke_oct(shared_data_dir("duke_oct"))
    for split in oct_semi_supervised_splits(items, n_pixel_labelled=3, image_label_share=0.5, test_fraction=0.5):
        (test_subject,) = {i["subject"] for i in split["test"]}
        train = split["pixel"] + split["image"] + split["unlabelled"]
        assert len(split["test"]) == 11 and {i["subject"] for i in train} == {3 - test_subject}
        assert (len(split["pixel"]), len(split["image"]), len(split["unlabelled"])) == (3, 4, 4)
