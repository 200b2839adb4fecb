from __future__ import annotations

import pytest

from monai_masksup.data import DataFileError, pair_by_name
from monai_masksup.data.pairing import pair_key


def test_pair_key_strips_one_label_suffix_and_the_extension():
    assert pair_key("a/train_1_anno.bmp", ("_anno",)) == "train_1"
    assert pair_key("b/cju0qkwl35piu0993l0dewei2.jpg", ("_mask",)) == "cju0qkwl35piu0993l0dewei2"
    assert pair_key("c/x_mask.png", ("_anno", "_mask")) == "x"


def test_pairs_by_name_not_by_sorted_position():
    # the lists are shuffled differently and the extensions differ: pairing by position would match 3.jpg with 2.png
    images = ["img/3.jpg", "img/1.jpg", "img/2.jpg"]
    labels = ["lab/2_mask.png", "lab/3_mask.png", "lab/1_mask.png"]
    datalist = pair_by_name(images, labels)
    assert datalist == [
        {"image": "img/1.jpg", "label": "lab/1_mask.png"},
        {"image": "img/2.jpg", "label": "lab/2_mask.png"},
        {"image": "img/3.jpg", "label": "lab/3_mask.png"},
    ]


def test_natural_order_puts_2_before_10():
    datalist = pair_by_name(["i/train_10.bmp", "i/train_2.bmp"], ["l/train_2_anno.bmp", "l/train_10_anno.bmp"])
    assert [d["image"] for d in datalist] == ["i/train_2.bmp", "i/train_10.bmp"]


def test_image_without_label_is_named():
    with pytest.raises(DataFileError, match=r"img/2\.jpg.*no label"):
        pair_by_name(["img/1.jpg", "img/2.jpg"], ["lab/1.png"])


def test_label_without_image_is_named():
    with pytest.raises(DataFileError, match=r"lab/7_mask\.png.*no image"):
        pair_by_name(["img/1.jpg"], ["lab/1_mask.png", "lab/7_mask.png"])


def test_two_files_with_one_name_are_refused():
    with pytest.raises(DataFileError, match=r"Original/1\.tif.*Original/1\.png"):
        pair_by_name(["Original/1.tif", "Original/1.png"], ["GT/1.tif"])
