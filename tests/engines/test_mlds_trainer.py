"""Tests of MultiLabelDeepSupervisionTrainer: three iterations of every mode on CPU, pseudo-labels, outputs."""

from __future__ import annotations

import copy

import pytest
import torch
from monai.networks.nets import SegResNetDS
from monai.utils.enums import CommonKeys as Keys

from monai_masksup.engines import (
    MLDS_MODES,
    FlipAffinePerturbation,
    MLDSKeys,
    MultiLabelDeepSupervisionTrainer,
    split_hierarchical_output,
)
from monai_masksup.losses import MultiLabelDeepSupervisionLoss
from monai_masksup.networks import HierarchicalUNet

K = 3
SIZE = 32
TERMS = {
    "supervised": {"ce", "mlds"},
    "self_taught": {"ce", "mlds"},
    "mean_taught": {"ce", "mlds", "consistency"},
    "unet": {"ce"},
    "mil": {"ce", "mil"},
    "ds_mil": {"ce", "mlds", "mil"},
    "mean_teacher": {"ce", "consistency"},
}


def _net() -> HierarchicalUNet:
    torch.manual_seed(0)
    return HierarchicalUNet(in_channels=1, out_channels=K, features=(4, 8, 8, 16, 16), head_channels=4)


def _labelled(n: int = 3, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "image": torch.rand(2, 1, SIZE, SIZE, generator=g),
            "label": torch.randint(0, K, (2, 1, SIZE, SIZE), generator=g),
        }
        for _ in range(n)
    ]


def _unlabelled(n: int = 2, seed: int = 1, image_labels: torch.Tensor | None = None) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        batch = {"image": torch.rand(2, 1, SIZE, SIZE, generator=g)}
        batch[MLDSKeys.IMAGE_LABELS] = torch.ones(2, K) if image_labels is None else image_labels
        batches.append(batch)
    return batches


def _trainer(mode: str, network=None, labelled=None, lr: float = 0.01, **kwargs) -> MultiLabelDeepSupervisionTrainer:
    network = network or _net()
    kwargs.setdefault("decollate", False)
    if mode in ("mean_taught", "mean_teacher") and "teacher" not in kwargs:
        # a frozen copy stands in for the EMA teacher: the engine only calls it
        kwargs["teacher"] = copy.deepcopy(network).requires_grad_(False)
    if mode not in ("supervised", "unet"):
        kwargs.setdefault("unlabelled_data_loader", _unlabelled())
    kwargs.setdefault("max_epochs", 1)
    return MultiLabelDeepSupervisionTrainer(
        device="cpu",
        train_data_loader=_labelled() if labelled is None else labelled,
        network=network,
        optimizer=torch.optim.SGD(network.parameters(), lr=lr),
        mode=mode,
        **kwargs,
    )


@pytest.mark.parametrize("mode", MLDS_MODES)
def test_three_iterations_of_every_mode_log_its_terms_and_train(mode):
    trainer = _trainer(mode, perturbation_seed=0)
    before = [p.detach().clone() for p in trainer.network.parameters()]
    trainer.run()
    assert trainer.state.iteration == 3
    out = trainer.state.output
    assert isinstance(out[Keys.PRED], torch.Tensor) and out[Keys.PRED].shape == (2, K, SIZE, SIZE)
    levels = out[MLDSKeys.PRED_LEVELS]
    assert [tuple(z.shape[2:]) for z in levels] == [(2, 2), (4, 4), (8, 8), (16, 16), (32, 32)]
    assert not any(z.requires_grad for z in levels)
    logged = {k[len("loss_") :] for k in out if k.startswith("loss_") and not k.startswith("loss_level_")}
    assert logged == TERMS[mode]
    # the MLDS loss's own per-level components, from its last call
    assert ("loss_level_4" in out) == ("mlds" in TERMS[mode])
    weighted = sum(out[f"loss_{t}"] for t in TERMS[mode])
    assert out[Keys.LOSS].item() == pytest.approx(weighted, rel=1e-5)
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, trainer.network.parameters()))


def test_unlabelled_loader_restarts_when_it_runs_out():
    trainer = _trainer("self_taught", unlabelled_data_loader=_unlabelled(n=1))
    trainer.run()
    assert trainer.state.iteration == 3


class _RecordingLoader:
    """A list of batches that records the index of every batch it yields."""

    def __init__(self, batches: list[dict]) -> None:
        self.batches, self.drawn = batches, []

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for i, batch in enumerate(self.batches):
            self.drawn.append(i)
            yield batch


def test_unlabelled_loader_starts_a_fresh_pass_every_epoch():
    # 3 labelled batches an epoch, 2 unlabelled: epoch 1 draws 0, 1, 0; epoch 2 starts again at 0 (as a resumed
    # run at the epoch boundary would), not at 1
    loader = _RecordingLoader(_unlabelled(n=2))
    trainer = _trainer("self_taught", unlabelled_data_loader=loader, max_epochs=2)
    trainer.run()
    assert loader.drawn == [0, 1, 0, 0, 1, 0]


def test_self_taught_pseudo_labels_follow_the_image_labels():
    # image labels with only the background: every pseudo-label pixel must be background
    trainer = _trainer("self_taught", unlabelled_data_loader=_unlabelled(image_labels=torch.tensor([[1, 0, 0]] * 2)))
    trainer.run()
    pseudo = trainer.state.output[MLDSKeys.PSEUDO_LABEL]
    assert pseudo.shape == (2, 1, SIZE, SIZE) and pseudo.dtype == torch.int64
    assert torch.equal(pseudo, torch.zeros_like(pseudo))


def test_self_taught_pseudo_labels_are_the_argmax_of_the_standard_head_on_unlabelled_images():
    captured = {}

    class _Recording(MultiLabelDeepSupervisionTrainer):
        def forward(self, inputs, *args, **kwargs):
            out = super().forward(inputs, *args, **kwargs)
            captured["logits"] = split_hierarchical_output(out)[0].detach()
            return out

    network = _net()
    trainer = _Recording(
        device="cpu",
        max_epochs=1,
        train_data_loader=_labelled(1),
        network=network,
        optimizer=torch.optim.SGD(network.parameters(), lr=0.0),
        mode="self_taught",
        unlabelled_data_loader=_unlabelled(),
        decollate=False,
    )
    trainer.run()
    # the student ran once on [labelled; unlabelled]; the pseudo-labels are the unlabelled half's argmax
    assert captured["logits"].shape[0] == 4
    assert torch.equal(trainer.state.output[MLDSKeys.PSEUDO_LABEL], captured["logits"][2:].argmax(1, keepdim=True))


def test_mean_taught_teacher_sees_the_perturbed_scan_and_invalid_pixels_are_ignored():
    seen = []

    class _Teacher(torch.nn.Module):
        def forward(self, x):
            seen.append(x.clone())
            # a teacher that predicts class 2 everywhere
            logits = torch.zeros(x.shape[0], K, *x.shape[2:])
            logits[:, 2] = 5.0
            return logits

    perturbation = FlipAffinePerturbation(flip_prob=0.0, translate_range=0.3, mode="nearest")
    trainer = _trainer(
        "mean_taught",
        teacher=_Teacher(),
        perturbation=perturbation,
        perturbation_seed=3,
        loss_function=MultiLabelDeepSupervisionLoss(ignore_index=-1),
    )
    trainer.run()
    out = trainer.state.output
    valid, pseudo = out[MLDSKeys.VALIDITY_MASK], out[MLDSKeys.PSEUDO_LABEL]
    assert 0 < valid.mean() < 1
    assert torch.equal(pseudo[valid == 1], torch.full_like(pseudo[valid == 1], 2))
    assert torch.equal(pseudo[valid == 0], torch.full_like(pseudo[valid == 0], -1))
    # the first iteration's teacher input is the first unlabelled batch under the seed's first draw
    params = perturbation.draw(2, (SIZE, SIZE), torch.Generator().manual_seed(3))
    expected = perturbation.apply(_unlabelled()[0]["image"], params)
    assert torch.equal(seen[0], expected) and not torch.equal(seen[0], _unlabelled()[0]["image"])


def test_affine_mean_taught_needs_a_loss_with_ignore_index():
    class _NoIgnore(torch.nn.Module):
        def forward(self, levels, target):
            return levels[0].sum() * 0

    with pytest.raises(ValueError, match="ignore_index"):
        _trainer("mean_taught", loss_function=_NoIgnore(), perturbation=FlipAffinePerturbation(rotate_range=0.1))


def test_segresnetds_trains_in_self_taught_mode():
    torch.manual_seed(0)
    network = SegResNetDS(
        spatial_dims=2, init_filters=4, in_channels=1, out_channels=K, blocks_down=(1, 1, 1, 1), dsdepth=3
    )
    trainer = _trainer("self_taught", network=network)
    trainer.run()
    out = trainer.state.output
    assert out[Keys.PRED].shape == (2, K, SIZE, SIZE)
    assert [tuple(z.shape[2:]) for z in out[MLDSKeys.PRED_LEVELS]] == [(32, 32), (16, 16), (8, 8)]


def test_ignored_label_pixels_are_left_out_of_ce_and_mlds():
    batches = _labelled(1)
    label = batches[0]["label"]
    label[:, :, :, :16] = 7
    network = _net()
    trainer = _trainer("supervised", network=network, labelled=batches, lr=0.0, ignore_index=7)
    trainer.run()
    assert trainer.loss_function.ignore_index == 7
    with torch.no_grad():
        logits, levels = network.train()(batches[0]["image"])
    # only the right half is annotated: the CE is the mean over it
    ce = torch.nn.functional.cross_entropy(logits[..., 16:], label[:, 0, :, 16:])
    assert trainer.state.output["loss_ce"] == pytest.approx(ce.item(), rel=1e-5)


@pytest.mark.parametrize(
    "mode, kwargs, match",
    [
        ("self_trained", {}, "mode"),
        ("self_taught", {"unlabelled_data_loader": None}, "unlabelled_data_loader"),
        ("mean_taught", {"teacher": None}, "teacher"),
        ("supervised", {"mlds_weight": -1.0}, "mlds_weight"),
    ],
)
def test_bad_configuration_is_refused(mode, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _trainer(mode, **kwargs)


def test_mil_without_image_labels_names_the_missing_key():
    trainer = _trainer("mil", unlabelled_data_loader=[{"image": torch.rand(2, 1, SIZE, SIZE)}])
    with pytest.raises(ValueError, match="image_labels"):
        trainer.run()


def test_decollated_output_keeps_the_levels_per_sample():
    trainer = _trainer("supervised", decollate=True)
    trainer.run()
    first = trainer.state.output[0]
    assert first[Keys.PRED].shape == (K, SIZE, SIZE)
    assert [tuple(z.shape) for z in first[MLDSKeys.PRED_LEVELS]][::4] == [(K, 2, 2), (K, 32, 32)]


@pytest.mark.parametrize("mode", ["supervised", "self_taught"])
def test_logged_terms_equal_the_losses_recomputed_from_one_forward_pass(mode):
    network = _net()
    labelled, unlabelled = _labelled(1), _unlabelled(1)
    trainer = _trainer(mode, network=network, labelled=labelled, lr=0.0, unlabelled_data_loader=unlabelled)
    trainer.run()
    out = trainer.state.output
    x, y = labelled[0]["image"], labelled[0]["label"]
    if mode == "self_taught":
        x = torch.cat([x, unlabelled[0]["image"]])
    with torch.no_grad():
        logits, levels = network.train()(x)  # batch statistics again, weights unchanged (lr 0)
    ce = torch.nn.functional.cross_entropy(logits[:2], y[:, 0])
    target = y if mode == "supervised" else torch.cat([y, logits[2:].argmax(1, keepdim=True)])
    mlds = MultiLabelDeepSupervisionLoss()([z[: target.shape[0]] for z in levels], target)
    assert out["loss_ce"] == pytest.approx(ce.item(), rel=1e-5)
    assert out["loss_mlds"] == pytest.approx(mlds.item(), rel=1e-5)
    assert out[Keys.LOSS].item() == pytest.approx(ce.item() + mlds.item(), rel=1e-5)


def test_mean_taught_runs_under_bfloat16_autocast_with_float32_losses():
    trainer = _trainer("mean_taught", amp=True, amp_kwargs={"dtype": torch.bfloat16})
    trainer.run()
    out = trainer.state.output
    assert out[Keys.PRED].dtype == torch.float32
    assert all(v == v for k, v in out.items() if k.startswith("loss_") and isinstance(v, float))
