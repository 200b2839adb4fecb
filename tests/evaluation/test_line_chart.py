"""PIL line chart: tick placement, series drawn, undefined values skipped."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from monai_masksup.evaluation import draw_line_chart, nice_ticks
from monai_masksup.evaluation.line_chart import SERIES_COLOURS


def test_nice_ticks_use_round_steps():
    assert nice_ticks(0.0, 1.0, 6) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert nice_ticks(0.0, 57.0, 8) == pytest.approx([0.0, 10.0, 20.0, 30.0, 40.0, 50.0])


def test_chart_draws_each_series_in_its_colour(tmp_path):
    path = draw_line_chart(
        [0, 5, 15, 25],
        {"IoU": [1.0, 0.9, math.nan, 0.7], "Dice": [1.0, 0.95, 0.9, None]},
        str(tmp_path / "plots" / "curve.png"),
        title="t",
        x_label="coverage (%)",
        y_label="score",
        size=(320, 240),
    )
    with Image.open(path) as image:
        assert image.size == (320, 240)
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    for colour in SERIES_COLOURS[:2]:
        assert (pixels == np.array(colour)).all(axis=1).sum() > 20


def test_chart_rejects_series_of_wrong_length(tmp_path):
    with pytest.raises(ValueError, match="IoU"):
        draw_line_chart([0, 1], {"IoU": [1.0]}, str(tmp_path / "c.png"))
