"""Which studies the MONAI Label app lists and hands to a 2D or a volume bundle (no MONAI Label needed)."""

from __future__ import annotations

from tests.apps.conftest import app_module

study_files = app_module("study_files")


def test_datastore_extensions_keep_the_configured_patterns_first_and_add_bmp_and_volumes_once():
    patterns = study_files.datastore_extensions(["*.nii.gz", "*.png", "*.svs"])
    assert patterns[:3] == ["*.nii.gz", "*.png", "*.svs"]
    assert {"*.bmp", "*.jpeg", "*.tiff", "*.mhd", "*.nrrd", "*.nii"} <= set(patterns)
    assert len(patterns) == len(set(patterns))


def test_study_dimension_reads_the_suffix_case_insensitively():
    assert study_files.study_dimension("/s/train_1.BMP") == 2
    assert study_files.study_dimension("frame.jpeg") == 2
    assert study_files.study_dimension("/s/oct_07.nii.gz") == 3
    assert study_files.study_dimension("oct_07.mhd") == 3
    assert study_files.study_dimension("oct_07.raw") is None
    assert study_files.study_dimension("notes.xml") is None


def test_split_by_dimension_hands_a_2d_bundle_the_images_and_a_volume_bundle_the_volumes_in_order():
    studies = ["b.png", "v1.nii.gz", "a.jpg", "v2.mhd", "slide.svs"]
    assert study_files.split_by_dimension(studies, 2) == (["b.png", "a.jpg"], ["v1.nii.gz", "v2.mhd", "slide.svs"])
    assert study_files.split_by_dimension(studies, 3) == (["v1.nii.gz", "v2.mhd"], ["b.png", "a.jpg", "slide.svs"])
