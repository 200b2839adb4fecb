"""A test-only stand-in for ``monai_masksup.networks.EMATeacher`` while it is not in this branch (it arrives with
the mean-teacher work): the same constructor, ``update()``, ``forward`` and ``state_dict`` behaviour that
MaskContrast uses, parameters only. Tests use the real class when it can be imported (:func:`momentum_key_network`)."""

from __future__ import annotations

import copy

import torch


class MomentumStandIn(torch.nn.Module):
    """``teacher`` = a copy of ``student``; ``update()``: ``θ_t ← α θ_t + (1 − α) θ_s`` over parameters only."""

    def __init__(
        self, student: torch.nn.Module, alpha: float = 0.999, update_buffers: bool = False, mode: str = "train"
    ) -> None:
        super().__init__()
        if update_buffers:
            raise NotImplementedError("the stand-in implements update_buffers=False only")
        self.teacher = copy.deepcopy(student)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.teacher.train(mode == "train")
        self._student = [student]  # a list: not registered as a sub-module
        self.alpha = alpha

    @torch.no_grad()
    def update(self, student: torch.nn.Module | None = None) -> None:
        student = self._student[0] if student is None else student
        for t, s in zip(self.teacher.parameters(), student.parameters()):
            t.mul_(self.alpha).add_(s.detach(), alpha=1.0 - self.alpha)

    def train(self, mode: bool = True):
        return self  # the teacher's mode is kept, as EMATeacher(mode=...) does

    def forward(self, *args, **kwargs):
        with torch.no_grad():
            return self.teacher(*args, **kwargs)


def momentum_key_network(student: torch.nn.Module, alpha: float = 0.999):
    """``EMATeacher(student, alpha, update_buffers=False, mode="train")``, or the stand-in when it is absent."""
    try:
        from monai_masksup.networks import EMATeacher
    except ImportError:
        return MomentumStandIn(student, alpha=alpha, update_buffers=False, mode="train")
    return EMATeacher(student, alpha=alpha, update_buffers=False, mode="train")
