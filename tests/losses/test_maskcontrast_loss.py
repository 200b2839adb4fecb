"""Tests of MaskContrastLoss, its prototypes, class weights, queue and the momentum step against the reference
vectors (README section 4) and hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from monai_masksup.losses import (
    BalancedBCEWithLogitsLoss,
    LossComponents,
    MaskContrastLoss,
    PrototypeQueue,
    contrastive_logits,
    enet_class_weights,
    mask_prototypes,
)
from monai_masksup.networks import EMATeacher
from tests.conftest import load_reference, requires_cuda

LOSS_TOL = {"rtol": 1e-5, "atol": 1e-6}


def _ref() -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in load_reference("maskcontrast_loss.npz").items() if v.dtype.kind != "U"}


def _reference_queue(ref: dict[str, torch.Tensor]) -> PrototypeQueue:
    queue = PrototypeQueue(dim=ref["queue_before"].shape[0], size=ref["queue_before"].shape[1])
    queue.load_state_dict({"queue": ref["queue_before"], "queue_ptr": ref["queue_ptr_before"]})
    return queue


def _reference_step(ref: dict[str, torch.Tensor]):
    """One loss evaluation on the reference inputs: (loss module, value, grad_emb_q, grad_sal_logit, queue)."""
    queue = _reference_queue(ref)
    loss = MaskContrastLoss(queue=queue, temperature=float(ref["temperature"]))
    emb_q = ref["emb_q"].clone().requires_grad_(True)
    sal_logit = ref["sal_logit"].clone().requires_grad_(True)
    value = loss(emb_q, sal_logit, ref["sal_q"], ref["emb_k"], ref["sal_k"])
    value.backward()
    return loss, value.detach(), emb_q.grad, sal_logit.grad, queue


def test_prototypes_match_reference():
    ref = _ref()
    prototypes = mask_prototypes(ref["emb_k"], ref["sal_k"])
    torch.testing.assert_close(prototypes, ref["expected_prototypes"], rtol=0, atol=1e-6)


def test_logits_and_targets_match_reference():
    ref = _ref()
    logits, targets = contrastive_logits(
        ref["emb_q"], ref["sal_q"], ref["expected_prototypes"], ref["queue_before"], float(ref["temperature"])
    )
    torch.testing.assert_close(logits, ref["expected_logits"], rtol=0, atol=1e-5)
    assert torch.equal(targets, ref["expected_targets"])


def test_class_weights_match_reference():
    ref = _ref()
    weights = enet_class_weights(ref["expected_targets"], ref["expected_logits"].shape[1])
    torch.testing.assert_close(weights, ref["expected_w_class"], rtol=1e-5, atol=0)


def test_class_weight_of_an_absent_class_is_one_over_ln_1_02():
    weights = enet_class_weights(torch.tensor([0, 0, 1, 0]), 3)
    expected = torch.tensor([1 / math.log(1.02 + 0.75), 1 / math.log(1.02 + 0.25), 1 / math.log(1.02)])
    torch.testing.assert_close(weights, expected)


def test_saliency_loss_matches_reference():
    ref = _ref()
    value = BalancedBCEWithLogitsLoss()(ref["sal_logit"], ref["sal_q"])
    torch.testing.assert_close(value, ref["expected_saliency_loss"], **LOSS_TOL)


def test_balanced_bce_hand_computed():
    # logits 0 everywhere: every pixel loses ln2; 1 positive of 4 -> w = 3/4
    # L = (3/4 * ln2 + 1/4 * 3 ln2) / 4 = (6/4 ln2) / 4 = 3/8 ln2
    value = BalancedBCEWithLogitsLoss()(torch.zeros(1, 1, 2, 2), torch.tensor([[[[1, 0], [0, 0]]]]))
    assert value.item() == pytest.approx(3 / 8 * math.log(2), rel=1e-6)


def test_loss_components_and_total_match_reference():
    ref = _ref()
    loss, value, _, _, _ = _reference_step(ref)
    assert isinstance(loss, LossComponents)
    parts = loss.loss_components()
    torch.testing.assert_close(parts["contrastive"], ref["expected_contrastive_loss"], **LOSS_TOL)
    torch.testing.assert_close(parts["saliency"], ref["expected_saliency_loss"], **LOSS_TOL)
    torch.testing.assert_close(value, ref["expected_total_loss"], **LOSS_TOL)


def test_gradients_match_reference():
    ref = _ref()
    _, _, grad_emb_q, grad_sal_logit, _ = _reference_step(ref)
    torch.testing.assert_close(grad_emb_q, ref["expected_grad_emb_q"], rtol=0, atol=1e-7)
    torch.testing.assert_close(grad_sal_logit, ref["expected_grad_sal_logit"], rtol=0, atol=1e-7)


def test_no_gradient_reaches_the_key_embeddings():
    ref = _ref()
    emb_k = ref["emb_k"].clone().requires_grad_(True)
    loss = MaskContrastLoss(queue=_reference_queue(ref))
    loss(ref["emb_q"].clone().requires_grad_(True), ref["sal_logit"], ref["sal_q"], emb_k, ref["sal_k"]).backward()
    assert emb_k.grad is None


def test_queue_and_pointer_after_the_update_match_reference():
    ref = _ref()
    _, _, _, _, queue = _reference_step(ref)
    torch.testing.assert_close(queue.queue, ref["expected_queue_after"], rtol=0, atol=1e-6)
    assert torch.equal(queue.queue_ptr, ref["expected_queue_ptr_after"])


def test_queue_is_left_alone_without_update_queue():
    ref = _ref()
    queue = _reference_queue(ref)
    loss = MaskContrastLoss(queue=queue, update_queue=False)
    loss(ref["emb_q"], ref["sal_logit"], ref["sal_q"], ref["emb_k"], ref["sal_k"])
    assert torch.equal(queue.queue, ref["queue_before"])
    assert torch.equal(queue.queue_ptr, ref["queue_ptr_before"])


def test_queue_wraps_around_when_size_is_not_a_multiple():
    queue = PrototypeQueue(dim=2, size=3)
    queue.queue_ptr[0] = 2
    queue.enqueue(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    torch.testing.assert_close(queue.queue[:, 2], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(queue.queue[:, 0], torch.tensor([0.0, 1.0]))
    assert int(queue.queue_ptr) == 1


def test_queue_refuses_more_prototypes_than_it_holds():
    with pytest.raises(ValueError, match="do not fit a queue of size 2"):
        PrototypeQueue(dim=2, size=2).enqueue(torch.ones(3, 2))


def test_queue_state_dict_round_trip():
    source, target = PrototypeQueue(4, 8), PrototypeQueue(4, 8)
    source.enqueue(torch.eye(4)[:2])
    target.load_state_dict(source.state_dict())
    assert torch.equal(target.queue, source.queue) and int(target.queue_ptr) == 2


def test_batch_size_one_works_and_gives_finite_gradients():
    # the reference squeezes the (1, D) prototypes to (D,) and fails here
    ref = _ref()
    queue = _reference_queue(ref)
    emb_q = ref["emb_q"][:1].clone().requires_grad_(True)
    loss = MaskContrastLoss(queue=queue)
    value = loss(emb_q, ref["sal_logit"][:1], ref["sal_q"][:1], ref["emb_k"][:1], ref["sal_k"][:1])
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(emb_q.grad).all()
    torch.testing.assert_close(queue.queue[:, 12], ref["expected_prototypes"][0], rtol=0, atol=1e-6)
    assert int(queue.queue_ptr) == 13


def test_batch_size_one_without_queue_has_zero_contrastive_term():
    # one class only: the softmax is 1 on the own prototype, CE = 0
    ref = _ref()
    loss = MaskContrastLoss(queue=None)
    loss(ref["emb_q"][:1], ref["sal_logit"][:1], ref["sal_q"][:1], ref["emb_k"][:1], ref["sal_k"][:1])
    assert loss.loss_components()["contrastive"].item() == pytest.approx(0.0, abs=1e-7)


def test_batch_without_salient_pixels_gives_zero_contrastive_term_and_a_graph():
    emb_q = torch.randn(2, 4, 3, 3, requires_grad=True)
    empty = torch.zeros(2, 3, 3)
    loss = MaskContrastLoss(queue=PrototypeQueue(4, 4))
    value = loss(emb_q, torch.zeros(2, 1, 3, 3), empty, torch.randn(2, 4, 3, 3), empty)
    value.backward()
    assert loss.loss_components()["contrastive"].item() == 0.0
    assert emb_q.grad is not None and torch.isfinite(value)


def test_mismatched_mask_is_a_clear_error():
    with pytest.raises(ValueError, match="query_mask"):
        emb = torch.randn(2, 4, 3, 3)
        MaskContrastLoss()(emb, torch.zeros(2, 3, 3), torch.zeros(2, 4, 4), emb, torch.zeros(2, 3, 3))


def test_bad_temperature_is_refused():
    with pytest.raises(ValueError, match="temperature"):
        MaskContrastLoss(temperature=0.0)


class _StandInEncoder(torch.nn.Module):
    """The reference's stand-in encoder: one parameter ``w`` and one buffer."""

    def __init__(self, w: torch.Tensor, buffer_value: float) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(w.clone())
        self.register_buffer("b", torch.full_like(w, buffer_value))


def test_momentum_step_moves_parameters_and_leaves_buffers():
    ref = _ref()
    # the query buffer differs from the key's -1, so a buffer update would show
    query = _StandInEncoder(ref["encq_w"], buffer_value=5.0)
    key_net = EMATeacher(query, alpha=float(ref["momentum"]), update_buffers=False, mode="train")
    with torch.no_grad():
        key_net.teacher.w.copy_(ref["enck_w_before"])
        key_net.teacher.b.fill_(-1.0)
    key_net.update()
    torch.testing.assert_close(key_net.teacher.w.detach(), ref["expected_enck_w_after"], rtol=0, atol=1e-6)
    assert torch.equal(key_net.teacher.b, ref["expected_enck_buffer_after"])


def test_objects_of_one_image_get_their_own_prototypes_hand_computed():
    # one image 1x4, pixels [e0, e0, e1, e1], objects [1, 1, 2, 2] in both views, T = 0.5, no queue:
    # prototypes e0, e1; logits [[2, 0], [2, 0], [0, 2], [0, 2]]; equal class weights -> CE = ln(1 + e^-2)
    emb = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]).reshape(1, 2, 1, 4)
    ids = torch.tensor([[[1, 1, 2, 2]]])
    torch.testing.assert_close(mask_prototypes(emb, ids), torch.eye(2))
    logits, targets = contrastive_logits(emb, ids, torch.eye(2), None, 0.5)
    torch.testing.assert_close(logits, torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 2.0], [0.0, 2.0]]))
    assert targets.tolist() == [0, 0, 1, 1]
    loss = MaskContrastLoss(queue=None)
    loss(emb, torch.zeros(1, 1, 1, 4), ids, emb, ids)
    assert loss.loss_components()["contrastive"].item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)


def test_object_absent_from_the_key_view_gives_no_rows_and_no_enqueue():
    ref = _ref()
    key_mask = ref["sal_k"].clone()
    key_mask[1] = 0
    queue = _reference_queue(ref)
    loss = MaskContrastLoss(queue=queue)
    value = loss(ref["emb_q"], ref["sal_logit"], ref["sal_q"], ref["emb_k"], key_mask)
    assert torch.isfinite(value)
    # images 0, 2, 3 enqueued at columns 12, 13, 14 (the reference's prototypes: they do not depend on image 1)
    torch.testing.assert_close(queue.queue[:, 12:15], ref["expected_prototypes"][[0, 2, 3]].T, rtol=0, atol=1e-6)
    assert int(queue.queue_ptr) == 15
    present = torch.tensor([True, False, True, True])
    logits, targets = contrastive_logits(ref["emb_q"], ref["sal_q"], ref["expected_prototypes"], None, 0.5, present)
    assert logits.shape == (14 + 73 + 6, 3) and targets.unique().tolist() == [0, 1, 2]


def _enqueue_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    import os

    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        torch.manual_seed(0)  # the same initial queue on both ranks
        queue = PrototypeQueue(dim=3, size=8)
        # rank 0 brings 2 prototypes, rank 1 brings 1 (an object absent from a key view)
        protos = torch.eye(3)[:2] if rank == 0 else torch.eye(3)[2:] * -1
        queue.enqueue(protos)
        torch.save(queue.state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ddp_enqueue_gathers_every_ranks_prototypes(tmp_path):
    import torch.multiprocessing as mp

    start_method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(
        _enqueue_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True, start_method=start_method
    )
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    expected = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]]).T
    for state in (rank0, rank1):
        torch.testing.assert_close(state["queue"][:, :3], expected)
        assert int(state["queue_ptr"]) == 3
    torch.testing.assert_close(rank0["queue"], rank1["queue"])


@requires_cuda
def test_reference_loss_and_queue_on_cuda():
    ref = {k: v.cuda() for k, v in _ref().items()}
    queue = _reference_queue(ref).cuda()
    loss = MaskContrastLoss(queue=queue)
    emb_q = ref["emb_q"].clone().requires_grad_(True)
    value = loss(emb_q, ref["sal_logit"], ref["sal_q"], ref["emb_k"], ref["sal_k"])
    value.backward()
    torch.testing.assert_close(value, ref["expected_total_loss"], **LOSS_TOL)
    torch.testing.assert_close(emb_q.grad, ref["expected_grad_emb_q"], rtol=0, atol=1e-7)
    torch.testing.assert_close(queue.queue, ref["expected_queue_after"], rtol=0, atol=1e-6)
