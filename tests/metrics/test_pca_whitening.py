"""PCA whitening of prototypes on hand-computed points."""

from __future__ import annotations

import pytest
import torch

from monai_masksup.metrics import pca_whiten


def test_points_on_a_line_whiten_to_one_unit_variance_component():
    # centred x-coordinates -2, 0, 2 have unbiased variance 4, so they whiten to -1, 0, 1; the y axis carries
    # no variance and is dropped
    x = torch.tensor([[0.0, 5.0], [2.0, 5.0], [4.0, 5.0]], dtype=torch.float64)
    out = pca_whiten(x)
    assert out.shape == (3, 1)
    torch.testing.assert_close(out.abs().squeeze(1), torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64))
    assert float(out[0, 0] * out[2, 0]) < 0


def test_whitened_columns_are_centred_uncorrelated_with_unit_variance():
    g = torch.Generator().manual_seed(0)
    mixing = torch.tensor([[3.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.0, 2.0, 0.1]], dtype=torch.float64)
    x = torch.randn(200, 3, generator=g, dtype=torch.float64) @ mixing + 7.0
    out = pca_whiten(x)
    assert out.shape == (200, 3)
    torch.testing.assert_close(out.mean(dim=0), torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(torch.cov(out.T), torch.eye(3, dtype=torch.float64))


def test_n_components_keeps_the_largest_variance_directions():
    # variance 100 along x, 1 along y: the single kept component is x, scaled by 1 / 10
    x = torch.tensor([[-10.0, 1.0], [10.0, 1.0], [0.0, -1.0], [0.0, -1.0], [0.0, 0.0]], dtype=torch.float64)
    out = pca_whiten(x, n_components=1)
    assert out.shape == (5, 1)
    expected = x[:, 0] / float(x[:, 0].std())
    torch.testing.assert_close(out.squeeze(1).abs(), expected.abs())


@pytest.mark.parametrize("bad", [torch.zeros(1, 3), torch.zeros(4), torch.zeros(4, 3, dtype=torch.long)])
def test_bad_input_is_refused_with_its_shape(bad):
    with pytest.raises(ValueError, match="pca_whiten"):
        pca_whiten(bad)
