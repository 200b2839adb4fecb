"""How much a mean teacher and its student disagree on an image: the score that ranks unlabelled studies."""

from __future__ import annotations

import torch

from monai_masksup.losses import ConsistencyLoss

__all__ = ["teacher_student_disagreement"]


def teacher_student_disagreement(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """
    The mean over each image's pixels of the squared difference of the student's and the teacher's probability
    maps, summed over the classes: the mean teacher's own consistency term (``ConsistencyLoss(variant="var")``,
    French et al., BMVC 2020), per image and without confidence gating, so that the images the semi-supervised
    training is least consistent on rank first for labelling.

    One output channel (sigmoid) counts as the two classes ``[1 − σ(z), σ(z)]``, as in the training:
    ``2 (σ(z_s) − σ(z_t))²`` per pixel, between 0 and 2.

    Args:
        student_logits: ``(B, C, *spatial)`` logits of the student.
        teacher_logits: the teacher's logits, same shape.

    Returns:
        ``(B,)`` float32 scores, 0 where the two agree everywhere.
    """
    per_pixel = ConsistencyLoss(variant="var", reduction="none")(student_logits, teacher_logits)
    return per_pixel.flatten(1).mean(dim=1)
