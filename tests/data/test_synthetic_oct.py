from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.transforms import Compose

from monai_masksup.data import (
    bscan_png_volume_transforms,
    index_bscan_folders,
    index_retouch,
    make_synthetic_retouch,
    oct_volume_transforms,
    synthetic_oct_volume,
)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("oct")
    make_synthetic_retouch(root / "mhd", n_volumes=1, vendors=("Cirrus", "Topcon"), seed=3, png_root=root / "png")
    return root


def test_same_volume_as_mhd_and_png_bscans_loads_identically(synthetic):
    volumes = index_retouch(synthetic / "mhd")
    pngs = index_bscan_folders(synthetic / "png")
    assert [v["subject"] for v in volumes] == [p["subject"] for p in pngs] == ["Cirrus/TRAIN001", "Topcon/TRAIN002"]
    for volume, png in zip(volumes, pngs):
        a = Compose(oct_volume_transforms(num_classes=4))(volume)
        b = Compose(bscan_png_volume_transforms(num_classes=4))(png)
        assert a["image"].shape == b["image"].shape == (1, 64, 48, 8)
        assert torch.equal(a["image"].as_tensor(), b["image"].as_tensor())
        assert torch.equal(a["label"].as_tensor(), b["label"].as_tensor())
        assert float(a["image"].min()) == 0.0 and float(a["image"].max()) == 1.0  # normalised per volume


def test_generator_is_deterministic_and_draws_all_classes_in_their_layers():
    image, label = synthetic_oct_volume((8, 48, 64), seed=3)
    again, _ = synthetic_oct_volume((8, 48, 64), seed=3)
    assert np.array_equal(image, again) and not np.array_equal(image, synthetic_oct_volume((8, 48, 64), seed=4)[0])
    assert image.dtype == label.dtype == np.uint8 and set(np.unique(label)) == {0, 1, 2, 3}
    rows = np.nonzero(label)[1]
    depth_of = {c: np.nonzero(label == c)[1].mean() for c in (1, 2, 3)}
    # IRF inside the retina lies above SRF, which sits on the RPE, above PED under the RPE (rows grow with depth)
    assert depth_of[1] < depth_of[2] < depth_of[3] and rows.min() > 0
    assert image[label > 0].mean() < 0.5 * image[(label == 0) & (image > 60)].mean()  # fluid is dark


def test_bad_shape_is_refused():
    with pytest.raises(ValueError, match=r"depth >= 32"):
        synthetic_oct_volume((4, 16, 64))
