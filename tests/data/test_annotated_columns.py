from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_masksup.data import DataFileError, IgnoreUnannotatedColumns, IgnoreUnannotatedColumnsd


def test_columns_outside_range_become_ignore_value_on_axis_0():
    label = torch.ones(1, 5, 3)
    out = IgnoreUnannotatedColumns(ignore_value=255)(label, (1, 3))
    expected = torch.tensor([255, 1, 1, 255, 255], dtype=torch.float32)[:, None].expand(5, 3)
    assert torch.equal(out[0], expected)
    assert torch.equal(label, torch.ones(1, 5, 3))  # input untouched


def test_numpy_label_stays_numpy_and_axis_selects_columns():
    label = np.zeros((1, 2, 4), dtype=np.float32)
    out = IgnoreUnannotatedColumns(ignore_value=-1, axis=1)(label, [2, 4])
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out[0], [[-1, -1, 0, 0], [-1, -1, 0, 0]])


def test_item_without_range_is_unchanged():
    d = {"label": torch.zeros(1, 4, 4)}
    assert torch.equal(IgnoreUnannotatedColumnsd("label")(d)["label"], torch.zeros(1, 4, 4))


def test_dictionary_version_reads_range_from_item():
    d = {"label": torch.zeros(1, 4, 2), "annotated_columns": [0, 2]}
    out = IgnoreUnannotatedColumnsd("label", ignore_value=9)(d)["label"]
    assert out[0, :, 0].tolist() == [0, 0, 9, 9]


@pytest.mark.parametrize("columns", [(3, 3), (0, 9), (-1, 2)])
def test_bad_range_names_the_file(columns):
    label = MetaTensor(torch.zeros(1, 4, 4), meta={"filename_or_obj": "/d/mask_7.png"})
    with pytest.raises(DataFileError, match=r"mask_7\.png.*annotated columns"):
        IgnoreUnannotatedColumns()(label, columns)
