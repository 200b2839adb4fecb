"""The GlaS clustering evaluation script in quick form on 4 real images (no figure is asserted: the figures of
the full run are in the report / docs)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from tests.conftest import PROJECT_ROOT, shared_data_dir


def _script():
    spec = importlib.util.spec_from_file_location(
        "maskcontrast_eval_glas", PROJECT_ROOT / "benchmarks" / "maskcontrast_eval_glas.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.real_data
def test_quick_run_on_four_real_images_prints_a_row_per_network_and_saliency(capsys):
    data_dir = shared_data_dir("glas_images_unlabelled")
    script = _script()
    paths, grades = script.select_images(data_dir, limit=4)
    # alternating grades in name order; grades as in the official Grade.csv
    assert [p.name for p in paths] == ["testA_1.bmp", "testA_2.bmp", "testA_3.bmp", "testA_8.bmp"]
    assert grades.tolist() == [0, 0, 1, 1]
    script.main(["--data-dir", str(data_dir), "--limit", "4", "--size", "32", "--seeds", "2", "--threads", "1"])
    out = capsys.readouterr().out
    assert "4 images (2 benign, 2 malignant)" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["basicunet"], ["image-statistics"])]
    assert [row[:2] for row in rows] == [
        ["basicunet", "all"],
        ["basicunet", "dark"],
        ["image-statistics", "all"],
        ["image-statistics", "dark"],
    ]
    for row in rows:
        miou, accuracy = float(row[2]), float(row[5])
        assert 0.0 <= miou <= 1.0 and 0.0 <= accuracy <= 1.0


def test_dark_rule_marks_pixels_under_the_mean_grey_and_statistics_are_colour_moments():
    script = _script()
    images = torch.tensor([[[[0.0, 1.0], [0.2, 0.9]]] * 3])  # (1, 3, 2, 2), grey mean 0.525
    assert script.dark_pixels(images).tolist() == [[[[1.0, 0.0], [1.0, 0.0]]]]
    embedded = script.ImageStatistics()(images)
    assert embedded.shape == (1, 6, 2, 2)
    torch.testing.assert_close(embedded[0, 3:, 1, 0], torch.full((3,), 0.04))
