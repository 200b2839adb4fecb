from __future__ import annotations

import pytest

from monai_masksup.data import PRANET_URL, DataFileError, DatasetLayoutError, index_pranet, list_pranet_test_sets

from .image_files import write_pair


def _pranet(root):
    train, test = root / "TrainDataset", root / "TestDataset"
    for i, name in enumerate(["1", "2", "cju0qkwl35piu0993l0dewei2"]):
        write_pair(train / "image" / f"{name}.png", train / "mask" / f"{name}.png", seed=i)
    write_pair(test / "CVC-ClinicDB" / "images" / "5.png", test / "CVC-ClinicDB" / "masks" / "5.png")
    write_pair(test / "Kvasir" / "images" / "k.jpg", test / "Kvasir" / "masks" / "k.png")
    return root


def test_train_and_test_sets_are_indexed(tmp_path):
    root = _pranet(tmp_path)
    train = index_pranet(root, "train")
    assert [d["image"].rsplit("/", 1)[1] for d in train] == ["1.png", "2.png", "cju0qkwl35piu0993l0dewei2.png"]
    assert all("/TrainDataset/mask/" in d["label"] for d in train)
    kvasir = index_pranet(root, "Kvasir")
    kvasir_dir = root / "TestDataset" / "Kvasir"
    assert kvasir == [{"image": str(kvasir_dir / "images" / "k.jpg"), "label": str(kvasir_dir / "masks" / "k.png")}]
    assert list_pranet_test_sets(root) == ["CVC-ClinicDB", "Kvasir"]


def test_unknown_test_set_lists_those_present(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"no test set 'ETIS'.*CVC-ClinicDB.*Kvasir"):
        index_pranet(_pranet(tmp_path), "ETIS")


def test_missing_train_folder_says_layout_and_url(tmp_path):
    with pytest.raises(DatasetLayoutError, match="TrainDataset") as info:
        index_pranet(tmp_path, "train")
    assert PRANET_URL in str(info.value)


def test_unpaired_mask_is_named(tmp_path):
    root = _pranet(tmp_path)
    (root / "TrainDataset" / "image" / "2.png").unlink()
    with pytest.raises(DataFileError, match=r"mask/2\.png.*no image"):
        index_pranet(root, "train")
