"""Tests of MaskContrast's mask proposals: label foreground, connected components, the Otsu rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_masksup.transforms import MaskProposal, MaskProposald, connected_components, otsu_threshold


def test_label_foreground_is_any_channel_above_threshold():
    label = torch.tensor([[[0, 200], [100, 0]], [[0, 0], [0, 255]]], dtype=torch.float32)
    out = MaskProposal("label", threshold=127)(label)
    assert out.shape == (1, 2, 2)
    assert out.tolist() == [[[0.0, 1.0], [0.0, 1.0]]]


def test_numpy_in_numpy_out():
    out = MaskProposal()(np.ones((1, 3, 3), dtype=np.uint8))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.sum() == 9


def test_components_get_their_own_ids_with_diagonal_connectivity():
    mask = torch.tensor(
        [[[1, 1, 0, 0, 0],
          [0, 0, 1, 0, 0],  # touches the first blob diagonally: same component
          [0, 0, 0, 0, 1],
          [1, 0, 0, 0, 1]]]
    )
    ids = connected_components(mask)
    a, b, c = ids[0, 0, 0], ids[0, 2, 4], ids[0, 3, 0]
    assert len({int(a), int(b), int(c)}) == 3 and {int(a), int(b), int(c)} == {1, 2, 3}
    assert ids[0, 1, 2] == a and ids[0, 0, 1] == a and ids[0, 3, 4] == b
    assert int((ids == 0).sum()) == 20 - 6


def test_small_components_are_dropped():
    mask = torch.zeros(1, 6, 6)
    mask[0, :3, :3] = 1  # 9 pixels
    mask[0, 5, 5] = 1  # 1 pixel
    ids = connected_components(mask, min_size=2)
    assert int(ids.max()) == 1 and int((ids == 1).sum()) == 9 and ids[0, 5, 5] == 0


def test_components_in_3d():
    mask = torch.zeros(1, 4, 4, 4)
    mask[0, 0, 0, 0] = mask[0, 1, 1, 1] = 1  # corner neighbours in 3D
    mask[0, 3, 3, 3] = 1
    ids = connected_components(mask)
    assert ids[0, 0, 0, 0] == ids[0, 1, 1, 1] != ids[0, 3, 3, 3] and int(ids.max()) == 2


def test_per_component_proposal_from_a_label():
    label = torch.zeros(1, 8, 8)
    label[0, 1:3, 1:3] = 255
    label[0, 5:7, 5:7] = 255
    out = MaskProposal("label", threshold=127, per_component=True)(label)
    assert sorted(out.unique().tolist()) == [0.0, 1.0, 2.0]


def test_otsu_threshold_splits_two_modes():
    values = torch.cat([torch.full((100,), 0.2), torch.full((50,), 0.8)])
    t = otsu_threshold(values)
    assert 0.2 < t <= 0.8


def test_otsu_dark_rule_gives_the_dark_region():
    image = torch.full((3, 8, 8), 230.0)
    image[:, 2:6, 2:6] = 60.0
    out = MaskProposal("otsu_dark")(image)
    expected = torch.zeros(1, 8, 8)
    expected[0, 2:6, 2:6] = 1
    assert torch.equal(out, expected)
    assert torch.equal(MaskProposal("otsu_bright")(image), 1 - expected)


def test_dictionary_version_writes_the_proposal_key():
    d = MaskProposald("label", proposal_key="proposal", threshold=0.5)({"label": torch.ones(1, 2, 2)})
    assert "proposal" in d and torch.equal(d["label"], torch.ones(1, 2, 2)) and float(d["proposal"].sum()) == 4


def test_unknown_source_is_refused():
    with pytest.raises(ValueError, match="source"):
        MaskProposal("sam")


@pytest.mark.real_data
def test_otsu_dark_rule_on_real_glas_tiles_is_neither_empty_nor_everything():
    from PIL import Image

    from tests.conftest import shared_data_dir

    folder = shared_data_dir("glas_images_unlabelled")
    for name in ("train_1.bmp", "testA_1.bmp", "testB_1.bmp"):
        rgb = np.asarray(Image.open(folder / name).convert("RGB"), dtype=np.float32)
        image = torch.from_numpy(rgb).permute(2, 0, 1)
        fraction = float(MaskProposal("otsu_dark")(image).mean())
        # H&E: stained tissue against bright lumens and background, both present on every tile
        assert 0.1 < fraction < 0.95, (name, fraction)
