from __future__ import annotations

import pytest

from monai_masksup.data import DataFileError, make_splits, read_id_list, split_train_val


def _items(n):
    return [{"image": f"img/{i}.png", "label": f"lab/{i}.png"} for i in range(n)]


def test_split_is_deterministic_disjoint_and_complete():
    items = _items(50)
    train, val = split_train_val(items, val_fraction=0.2, seed=3)
    again = split_train_val(items, val_fraction=0.2, seed=3)
    assert (train, val) == again
    assert len(val) == 10 and len(train) == 40
    names_t, names_v = {d["image"] for d in train}, {d["image"] for d in val}
    assert names_t.isdisjoint(names_v) and names_t | names_v == {d["image"] for d in items}
    # order inside each part follows the datalist
    assert train == sorted(train, key=lambda d: int(d["image"][4:-4]))


def test_other_seed_gives_another_split():
    items = _items(50)
    assert split_train_val(items, seed=0)[1] != split_train_val(items, seed=1)[1]


def test_tiny_lists_keep_one_item_each_side():
    train, val = split_train_val(_items(2), val_fraction=0.01)
    assert len(train) == 1 and len(val) == 1
    with pytest.raises(ValueError, match="cannot split 1"):
        split_train_val(_items(1))
    with pytest.raises(ValueError, match="val_fraction"):
        split_train_val(_items(5), val_fraction=1.0)


def test_default_splits_never_validate_on_test():
    train_list, test_list = _items(20), [{"image": "t/0.png", "label": "t/0_mask.png"}]
    splits = make_splits(train_list, test_list, val_fraction=0.25, seed=0)
    assert len(splits["train"]) == 15 and len(splits["validation"]) == 5
    assert splits["test"] == test_list
    assert not any(d in test_list for d in splits["validation"])


def test_paper_protocol_validates_on_the_test_set():
    train_list, test_list = _items(20), [{"image": "t/0.png", "label": "t/0_mask.png"}]
    splits = make_splits(train_list, test_list, paper_protocol=True)
    assert splits == {"train": train_list, "validation": test_list, "test": test_list}


def test_split_file_is_read_without_blank_lines_or_extensions(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("a1\n\n# comment\nb2.jpg\n  c3  \n")
    assert read_id_list(path) == ["a1", "b2", "c3"]
    assert read_id_list(["x", "y"]) == ["x", "y"]
    assert read_id_list(None) is None


def test_missing_split_file_is_named(tmp_path):
    with pytest.raises(DataFileError, match=r"nope\.txt' does not exist"):
        read_id_list(tmp_path / "nope.txt")
