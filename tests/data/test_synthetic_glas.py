from __future__ import annotations

import numpy as np
from PIL import Image

from monai_masksup.data import index_glas, make_synthetic_glas, read_glas_grades


def test_writes_the_warwick_layout_with_instance_labels(tmp_path):
    root = make_synthetic_glas(tmp_path / "glas", n_train=4, n_test_a=2, n_test_b=1, size=(64, 80), seed=0)
    assert len(index_glas(root, "train")) == 4 and len(index_glas(root, "test")) == 3
    image = Image.open(root / "train_1.bmp")
    anno = Image.open(root / "train_1_anno.bmp")
    assert (image.format, image.mode, image.size) == ("BMP", "RGB", (80, 64))
    assert (anno.format, anno.mode) == ("BMP", "L")
    for n in range(1, 5):
        ids = np.unique(np.asarray(Image.open(root / f"train_{n}_anno.bmp")))
        # instances are numbered 1..k without gaps, at least two glands per image
        assert ids.tolist() == list(range(len(ids))) and len(ids) >= 3
    grades = read_glas_grades(root)
    assert set(grades) == {"train_1", "train_2", "train_3", "train_4", "testA_1", "testA_2", "testB_1"}
    assert {g["grade"] for g in grades.values()} <= {"benign", "malignant"}
    header = (root / "Grade.csv").read_text().splitlines()[0]
    assert header == "name, patient ID, grade (GlaS), grade (Sirinukunwattana et al. 2015)"


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    a = make_synthetic_glas(tmp_path / "a", n_train=2, n_test_a=1, n_test_b=1, seed=5)
    b = make_synthetic_glas(tmp_path / "b", n_train=2, n_test_a=1, n_test_b=1, seed=5)
    c = make_synthetic_glas(tmp_path / "c", n_train=2, n_test_a=1, n_test_b=1, seed=6)
    for name in ("train_2.bmp", "train_2_anno.bmp", "Grade.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "train_2.bmp").read_bytes() != (c / "train_2.bmp").read_bytes()


def test_glands_are_separable_from_stroma_by_colour(tmp_path):
    # the green channel is the H&E contrast: stroma is pale (G ~ 184), epithelium purple (G ~ 104),
    # lumen near-white (G ~ 236); a fixed band on G alone must already find most gland pixels
    root = make_synthetic_glas(tmp_path, n_train=6, n_test_a=0, n_test_b=0, seed=1)
    ious = []
    for n in range(1, 7):
        green = np.asarray(Image.open(root / f"train_{n}.bmp"))[..., 1].astype(float)
        gland = np.asarray(Image.open(root / f"train_{n}_anno.bmp")) > 0
        guess = (green < 150) | (green > 218)
        ious.append((guess & gland).sum() / (guess | gland).sum())
    assert np.mean(ious) > 0.6
    assert all(0.03 < (np.asarray(Image.open(root / f"train_{n}_anno.bmp")) > 0).mean() < 0.7 for n in range(1, 7))
