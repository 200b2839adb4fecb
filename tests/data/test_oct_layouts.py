from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_masksup.data import DataFileError, DatasetLayoutError, synthetic_oct_volume, write_bscan_pngs
from monai_masksup.data.oct_layouts import (
    index_oct_bscans,
    list_oct_inference_inputs,
    load_oct_bscans,
    oct_bscan_stream,
    oct_data_or_demo,
    oct_loading_transforms,
)

from .oct_volumes import write_nifti, write_retouch_volume

SHAPE = (3, 32, 40)  # (n_bscans, depth, width)


@pytest.fixture(scope="module")
def one_volume(tmp_path_factory):
    """One generated volume stored in the three volume layouts: RETOUCH .mhd, NIfTI, PNG B-scan folders."""
    root = tmp_path_factory.mktemp("layouts")
    image, label = synthetic_oct_volume(SHAPE, seed=3)
    write_retouch_volume(root / "retouch" / "Spectralis" / "TRAIN001", image, label)
    # ITK's (z, y, x) array is nibabel's (x, y, z) transposed
    write_nifti(root / "nifti" / "images" / "v1.nii.gz", image.transpose(2, 1, 0))
    write_nifti(root / "nifti" / "labels" / "v1.nii.gz", label.transpose(2, 1, 0))
    write_bscan_pngs(image, label, root / "bscans" / "v1")
    return root, image, label


@pytest.mark.parametrize("layout", ["retouch", "nifti", "bscans"])
def test_every_volume_layout_gives_one_item_per_bscan_and_the_same_loaded_bscans(one_volume, layout):
    root, image, label = one_volume
    label_dir = root / "nifti" / "labels" if layout == "nifti" else None
    folder = root / "nifti" / "images" if layout == "nifti" else root / layout
    items = index_oct_bscans(layout, folder, label_dir=label_dir)
    assert [item["bscan"] for item in items] == [0, 1, 2] and len({item["subject"] for item in items}) == 1
    # B-scans 2 and 0 of the volume, loaded as (1, width, depth) with its label
    loaded = load_oct_bscans(layout, [items[2], items[0]], oct_loading_transforms(layout, num_classes=4))
    assert [int(b["bscan_index"]) for b in loaded] == [0, 2]
    for bscan in loaded:
        k = int(bscan["bscan_index"])
        assert tuple(bscan["image"].shape) == (1, SHAPE[2], SHAPE[1])
        assert torch.equal(torch.as_tensor(bscan["label"][0]).round().to(torch.uint8), torch.as_tensor(label[k].T))
    # normalised per volume, so the same in every layout: 1st-99th percentile of the whole volume onto [0, 1]
    lo, hi = np.percentile(image, [1, 99])
    expected = np.clip((image[0].T.astype(np.float64) - lo) / (hi - lo), 0, 1)
    np.testing.assert_allclose(np.asarray(loaded[0]["image"][0]), expected, atol=1e-5)


def test_stream_yields_every_bscan_of_its_parts_once_with_the_part_transforms(one_volume):
    from monai.transforms import Lambdad

    root, _, _ = one_volume
    items = index_oct_bscans("retouch", root / "retouch")
    tag = {part: [Lambdad("image", lambda x, p=part: p, overwrite="part", track_meta=False)] for part in ("a", "b")}
    stream = oct_bscan_stream("retouch", {"a": items[:1], "b": items[1:]}, oct_loading_transforms("retouch"), tag, 2)
    for _ in range(2):  # every pass, in its own order
        assert sorted((int(b["bscan_index"]), b["part"]) for b in stream) == [(0, "a"), (1, "b"), (2, "b")]
    with pytest.raises(ValueError, match="'b'"):
        oct_bscan_stream("retouch", {"a": items[:1], "b": items[1:]}, oct_loading_transforms("retouch"), {"a": []})


def test_stream_draws_of_an_epoch_depend_only_on_the_seed_and_the_epoch(one_volume):
    from monai.transforms import RandFlipd

    root, _, _ = one_volume
    items = index_oct_bscans("retouch", root / "retouch")
    flip = {"a": [RandFlipd("image", prob=0.5, spatial_axis=0)]}

    def epoch_draws(stream, epoch):
        stream.set_epoch(epoch)
        return [(int(b["bscan_index"]), float(b["image"][0, 0, 0])) for _ in range(2) for b in stream]

    stream = oct_bscan_stream("retouch", {"a": items}, oct_loading_transforms("retouch"), flip, 2, seed=7)
    first = epoch_draws(stream, 2)
    epoch_draws(stream, 1)
    # a new stream (a resumed run) at epoch 2 draws what the first one drew at epoch 2, passes and flips included
    again = oct_bscan_stream("retouch", {"a": items}, oct_loading_transforms("retouch"), flip, 2, seed=7)
    assert epoch_draws(again, 2) == first == epoch_draws(stream, 2)


def test_annotated_columns_outside_duke_and_nifti_without_labels_are_refused(one_volume):
    root, _, _ = one_volume
    with pytest.raises(ValueError, match="'duke' layout only"):
        index_oct_bscans("retouch", root / "retouch", annotated_columns="fluid_extent")
    with pytest.raises(ValueError, match="label_dir"):
        index_oct_bscans("nifti", root / "nifti" / "images")
    with pytest.raises(ValueError, match="layout"):
        index_oct_bscans("cirrus", root / "retouch")


def test_bscan_folder_volume_without_labels_is_refused_naming_it(tmp_path):
    image, _ = synthetic_oct_volume(SHAPE, seed=0)
    write_bscan_pngs(image, None, tmp_path / "v9")
    with pytest.raises(DataFileError, match="v9.*no 'labels' folder"):
        index_oct_bscans("bscans", tmp_path)


def test_demo_set_is_used_only_without_a_folder(tmp_path):
    assert oct_data_or_demo("duke", "/data/duke", tmp_path) == "/data/duke"
    with pytest.raises(ValueError, match="needs --dataset_dir"):
        oct_data_or_demo("duke", None, tmp_path)
    with pytest.raises(ValueError, match="empty string"):
        oct_data_or_demo("retouch", " ", tmp_path)
    assert not any(tmp_path.iterdir())


def test_inference_inputs_are_volumes_or_bscans_never_both(tmp_path, one_volume):
    root, image, _ = one_volume
    inputs = list_oct_inference_inputs(root / "nifti" / "images")
    assert inputs["kind"] == "volumes" and [p.split("/")[-1] for p in inputs["files"]] == ["v1.nii.gz"]
    assert list_oct_inference_inputs(root / "bscans" / "v1" / "images")["kind"] == "bscans"
    mixed = tmp_path / "mixed"
    write_bscan_pngs(image, None, mixed)
    write_nifti(mixed / "images" / "v1.nii", image.transpose(2, 1, 0))
    with pytest.raises(DatasetLayoutError, match=f"'{mixed / 'images'}' holds volumes"):
        list_oct_inference_inputs(mixed / "images")
    with pytest.raises(DatasetLayoutError, match="no_such"):
        list_oct_inference_inputs(tmp_path / "no_such")


def test_an_inference_input_that_is_gzip_but_not_nifti_is_named(tmp_path, one_volume):
    root, _, _ = one_volume
    folder = tmp_path / "volumes"
    folder.mkdir()
    (folder / "v1.nii.gz").write_bytes((root / "nifti" / "images" / "v1.nii.gz").read_bytes())
    (folder / "notes.txt.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(DatasetLayoutError, match="notes.txt.gz' is neither a volume nor a B-scan image"):
        list_oct_inference_inputs(folder)
