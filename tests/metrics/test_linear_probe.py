"""The linear probe: it learns a linearly separable embedding to mIoU ~1 while the trunk stays untouched."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from monai_masksup.metrics import FrozenEmbedding, LinearProbe, train_linear_probe

COLOURS = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]])


def _trunk(seed: int = 0) -> nn.Module:
    """A fixed 1x1 conv + batch norm with non-trivial running statistics: an injective affine pixel embedding."""
    torch.manual_seed(seed)
    trunk = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Dropout(0.5))
    trunk[1].running_mean.fill_(0.3)
    trunk[1].running_var.fill_(2.0)
    return trunk


def _loader(n_images: int, seed: int, batch_size: int = 4) -> DataLoader:
    """Images whose pixels carry their class's colour plus noise, with the per-pixel class as label."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n_images):
        label = torch.randint(0, 3, (1, 12, 12), generator=g)
        image = COLOURS[label[0]].permute(2, 0, 1) + 0.1 * torch.randn(3, 12, 12, generator=g)
        items.append({"image": image, "label": label})
    return DataLoader(items, batch_size=batch_size)


def test_probe_separates_a_linearly_separable_embedding_and_leaves_the_trunk_unchanged():
    trunk = _trunk()
    before = copy.deepcopy(trunk.state_dict())
    flags = [p.requires_grad for p in trunk.parameters()]
    result = train_linear_probe(trunk, 4, 3, _loader(8, seed=1), _loader(4, seed=2), max_epochs=15)
    assert result.miou > 0.99
    assert result.class_iou.shape == (3,) and bool((result.class_iou > 0.98).all())
    after = trunk.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)  # weights and batch-norm buffers
    assert [p.requires_grad for p in trunk.parameters()] == flags
    assert not trunk.training


def test_ignored_labels_are_left_out_of_the_miou():
    g = torch.Generator().manual_seed(3)
    label = torch.randint(0, 3, (1, 12, 12), generator=g)
    image = COLOURS[label[0]].permute(2, 0, 1)
    noisy = label.clone()
    noisy[0, :4] = 255  # pixels with no label
    train = DataLoader([{"image": image, "label": noisy}] * 4, batch_size=2)
    val = DataLoader([{"image": image, "label": noisy}], batch_size=1)
    result = train_linear_probe(_trunk(), 4, 3, train, val, max_epochs=30)
    assert result.miou > 0.99


def test_frozen_embedding_stays_in_eval_mode_and_picks_the_output_entry():
    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = _trunk()

        def forward(self, x):
            return {"embedding": self.body(x), "saliency": x[:, :1]}

    network = TwoHeads()
    frozen = FrozenEmbedding(network, output_key="embedding").train()
    assert frozen.training and not network.training
    x = torch.randn(2, 3, 5, 5, requires_grad=True)
    out = frozen(x)
    assert out.shape == (2, 4, 5, 5) and not out.requires_grad
    torch.testing.assert_close(out, network.eval().body(x).detach())


def test_probe_logits_are_resized_to_the_input_and_wrong_widths_are_refused():
    coarse = nn.Sequential(nn.Conv2d(3, 4, 1), nn.AvgPool2d(2))
    probe = LinearProbe(coarse, embedding_dim=4, num_classes=3)
    assert probe(torch.randn(1, 3, 8, 8)).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="embedding_dim=5"):
        LinearProbe(coarse, embedding_dim=5, num_classes=3)(torch.randn(1, 3, 8, 8))


def test_probe_of_volumes_uses_a_1x1x1_convolution():
    coarse = nn.Sequential(nn.Conv3d(1, 4, 1), nn.AvgPool3d(2))
    probe = LinearProbe(coarse, embedding_dim=4, num_classes=2, spatial_dims=3)
    assert isinstance(probe.head, nn.Conv3d) and probe.head.kernel_size == (1, 1, 1)
    assert probe(torch.randn(1, 1, 4, 4, 4)).shape == (1, 2, 4, 4, 4)
