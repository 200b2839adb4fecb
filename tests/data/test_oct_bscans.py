from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import DataLoader, MetaTensor
from monai.transforms import Compose

from monai_masksup.data import (
    BSCAN_INDEX_KEY,
    BScanIterd,
    DataFileError,
    index_retouch,
    oct_bscan_dataset,
    oct_volume_transforms,
)

from .oct_volumes import ramp_volume, write_retouch_volume


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    root = tmp_path_factory.mktemp("retouch")
    label = np.zeros((3, 4, 5), dtype=np.uint8)
    label[2] = 1
    write_retouch_volume(root / "Cirrus" / "TRAIN001", ramp_volume(), label)
    write_retouch_volume(root / "Cirrus" / "TRAIN002", ramp_volume(offset=100), label)
    return index_retouch(root)


def test_grid_patch_dataset_yields_every_bscan_of_every_volume(volumes):
    bscans = list(oct_bscan_dataset(volumes, oct_volume_transforms(lower=0, upper=100)))
    assert [(b["volume"], b[BSCAN_INDEX_KEY]) for b in bscans] == [("TRAIN001", k) for k in range(3)] + [
        ("TRAIN002", k) for k in range(3)
    ]
    for b in bscans:
        k = b[BSCAN_INDEX_KEY]
        assert b["image"].shape == b["label"].shape == (1, 5, 4)  # (C, width, depth)
        # B-scan k of the written (z, y, x) ramp is rows r, columns c: 20 k + 5 r + c, scaled by the volume range 59
        expected = (20 * k + 5 * np.arange(4)[None, :] + np.arange(5)[:, None]) / 59
        np.testing.assert_allclose(b["image"][0].numpy(), expected, atol=1e-6)
        assert b["label"].max().item() == (1 if k == 2 else 0)
        assert b["subject"] == f"Cirrus/{b['volume']}"


def test_listed_bscans_only_and_batches_through_a_data_loader(volumes):
    selected = [dict(volumes[0], bscans=[2, 0]), dict(volumes[1], bscans=[1])]
    ds = oct_bscan_dataset(selected, oct_volume_transforms(lower=0, upper=100))
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert batch["image"].shape == (3, 1, 5, 4)
    assert batch[BSCAN_INDEX_KEY].tolist() == [0, 2, 1] and list(batch["volume"]) == ["TRAIN001"] * 2 + ["TRAIN002"]


def test_two_loader_workers_yield_every_bscan_once(volumes):
    ds = oct_bscan_dataset(volumes, oct_volume_transforms(lower=0, upper=100))
    seen = [
        (v, int(k))
        for batch in DataLoader(ds, batch_size=1, num_workers=2)
        for v, k in zip(batch["volume"], batch[BSCAN_INDEX_KEY])
    ]
    assert sorted(seen) == [(v, k) for v in ("TRAIN001", "TRAIN002") for k in range(3)]


def test_unlabelled_volume_is_cut_without_label(volumes):
    unlabelled = [{k: v for k, v in volumes[0].items() if k != "label"}]
    bscans = list(oct_bscan_dataset(unlabelled))
    assert len(bscans) == 3 and all("label" not in b for b in bscans)


def test_bscan_transforms_run_on_2d_items(volumes):
    flip = Compose([lambda d: dict(d, image=torch.flip(d["image"], dims=[1]))])
    ds = oct_bscan_dataset(volumes[:1], oct_volume_transforms(lower=0, upper=100), bscan_transforms=[flip])
    first = next(iter(ds))
    assert first["image"][0, 0, 0].item() == pytest.approx(4 / 59)


def test_non_volume_is_refused_with_its_name():
    image = MetaTensor(torch.zeros(1, 4, 4), meta={"filename_or_obj": "/d/x.mhd"})
    with pytest.raises(DataFileError, match=r"volume '/d/x\.mhd' has shape \(1, 4, 4\)"):
        next(BScanIterd()({"image": image}))
    with pytest.raises(DataFileError, match=r"none of the keys \['image', 'label'\]"):
        next(BScanIterd()({"other": image}))
