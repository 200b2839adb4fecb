"""Invertible perturbations of a teacher's input (flips, a small affine) and the map of pixels the inverse can
restore."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from monai.networks.layers import AffineTransform

__all__ = ["FlipAffinePerturbation", "PerturbationParams"]


@dataclass
class PerturbationParams:
    """
    The random draws of one :class:`FlipAffinePerturbation` batch.

    Attributes:
        flips: ``(B, spatial_dims)`` bool, whether sample ``b`` is flipped along spatial axis ``d``.
        theta: ``(B, spatial_dims + 1, spatial_dims + 1)`` homogeneous affine in the normalised coordinates of
            ``torch.nn.functional.affine_grid`` (``align_corners=True``; axes in reverse order: x = last), or
            ``None`` when the perturbation has no affine part.
    """

    flips: torch.Tensor
    theta: torch.Tensor | None = None


class FlipAffinePerturbation:
    """
    A random invertible perturbation of a batch ``(B, C, *spatial)``: flips along the chosen spatial axes, then
    optionally a small affine (rotation in the plane of the last two axes, isotropic scaling, translation) through
    MONAI's ``AffineTransform``. :meth:`invert` maps a prediction on the perturbed batch back to the original frame,
    and :meth:`validity` marks the pixels that hold restored content: an affine pulls zeros in from outside the
    image, and those pixels are left out of a loss on the mapped-back prediction (Mean-Taught, Reiß et al., CVPR
    2021). Flips alone lose nothing: their inverse is exact and every pixel is valid.

    The rotation is a rotation in pixel space (the normalised coordinates are rescaled by the image's aspect ratio).
    The inverse is the exact inverse matrix; with bilinear interpolation the round trip is exact only up to
    interpolation, with ``mode="nearest"`` and whole-pixel translations it is exact.

    Args:
        flip_axes: the spatial axes (0-based, ``0`` = first spatial axis) to flip at random; ``None`` = all.
        flip_prob: probability of flipping each axis of each sample.
        rotate_range: the rotation angle is uniform in ``[-rotate_range, rotate_range]`` radians (0 = none).
        scale_range: the scale is uniform in ``[1 - scale_range, 1 + scale_range]`` (0 = none).
        translate_range: the shift along each axis is uniform in ``[-t, t]`` times the half side (0 = none).
        mode: interpolation of the affine, ``"bilinear"`` or ``"nearest"``.

    Raises:
        ValueError: when a probability or range is negative, ``flip_prob`` exceeds 1 or ``scale_range`` is 1 or more.
    """

    def __init__(
        self,
        flip_axes: tuple[int, ...] | None = None,
        flip_prob: float = 0.5,
        rotate_range: float = 0.0,
        scale_range: float = 0.0,
        translate_range: float = 0.0,
        mode: str = "bilinear",
    ) -> None:
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"FlipAffinePerturbation: flip_prob must be in [0, 1], got {flip_prob}.")
        if min(rotate_range, scale_range, translate_range) < 0 or scale_range >= 1:
            raise ValueError(
                "FlipAffinePerturbation: rotate_range, scale_range and translate_range must be non-negative and "
                f"scale_range below 1, got {rotate_range}, {scale_range}, {translate_range}."
            )
        self.flip_axes = None if flip_axes is None else tuple(int(a) for a in flip_axes)
        self.flip_prob = float(flip_prob)
        self.rotate_range = float(rotate_range)
        self.scale_range = float(scale_range)
        self.translate_range = float(translate_range)
        self.affine = AffineTransform(
            normalized=True, reverse_indexing=False, mode=mode, padding_mode="zeros", align_corners=True
        )

    @property
    def has_affine(self) -> bool:
        """Whether the perturbation has an affine part (and so may leave pixels without content)."""
        return max(self.rotate_range, self.scale_range, self.translate_range) > 0

    def draw(
        self, batch_size: int, spatial_size: tuple[int, ...], generator: torch.Generator | None = None
    ) -> PerturbationParams:
        """
        Draw the parameters of a batch on the CPU (so one seed gives the same draws on any device).

        Args:
            batch_size: ``B``.
            spatial_size: the batch's spatial size (2D or 3D).
            generator: a CPU ``torch.Generator``, or ``None`` for the global random state.

        Returns:
            the flips and, with an affine part, the matrices.

        Raises:
            ValueError: when a flip axis does not exist in ``spatial_size``.
        """
        nd = len(spatial_size)
        axes = range(nd) if self.flip_axes is None else self.flip_axes
        if any(a < 0 or a >= nd for a in axes):
            raise ValueError(f"FlipAffinePerturbation: flip_axes {self.flip_axes} do not fit {nd} spatial dims.")
        chosen = torch.zeros(nd, dtype=torch.bool)
        chosen[list(axes)] = True
        flips = (torch.rand(batch_size, nd, generator=generator) < self.flip_prob) & chosen
        if not self.has_affine:
            return PerturbationParams(flips)
        u = torch.rand(batch_size, nd + 2, generator=generator, dtype=torch.float64) * 2 - 1
        angle, scale = u[:, 0] * self.rotate_range, 1 + u[:, 1] * self.scale_range
        shift = u[:, 2:] * self.translate_range
        # pixel-space rotation in the plane of the last two axes, expressed in normalised coordinates (x = last axis)
        half = torch.tensor([max(s - 1, 1) / 2 for s in reversed(spatial_size)], dtype=torch.float64)
        rot = torch.eye(nd, dtype=torch.float64).repeat(batch_size, 1, 1)
        cos, sin = torch.cos(angle), torch.sin(angle)
        rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = cos, -sin, sin, cos
        linear = (rot * half[None, None, :]) / half[None, :, None] / scale[:, None, None]
        theta = torch.eye(nd + 1, dtype=torch.float64).repeat(batch_size, 1, 1)
        theta[:, :nd, :nd] = linear
        theta[:, :nd, nd] = shift
        return PerturbationParams(flips, theta.float())

    def apply(self, x: torch.Tensor, params: PerturbationParams) -> torch.Tensor:
        """
        Perturb ``x`` ``(B, C, *spatial)``: flips, then the affine.

        Returns:
            the perturbed batch, same shape.
        """
        x = _flip(x, params.flips)
        if params.theta is None:
            return x
        return self.affine(x, params.theta.to(x.device))

    def invert(self, y: torch.Tensor, params: PerturbationParams) -> torch.Tensor:
        """
        Map ``y`` ``(B, C, *spatial)`` (e.g. a prediction on the perturbed batch) back to the original frame: the
        inverse affine, then the flips.

        Returns:
            ``y`` in the original frame, same shape; pixels the inverse pulls from outside the image are 0.
        """
        if params.theta is not None:
            y = self.affine(y, torch.linalg.inv(params.theta.double()).float().to(y.device))
        return _flip(y, params.flips)

    def validity(
        self, params: PerturbationParams, spatial_size: tuple[int, ...], device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """
        The pixels of the original frame whose content survives the round trip.

        Returns:
            ``(B, 1, *spatial)`` float in {0, 1}: 1 where :meth:`invert` of a prediction on :meth:`apply` of the
            image holds image content, 0 where either direction pulled from outside.
        """
        ones = torch.ones(params.flips.shape[0], 1, *spatial_size, device=device)
        if params.theta is None:
            return ones
        # bilinear weights near the border sum to slightly below 1: a pixel counts when almost all of it is image
        return (self.invert(self.apply(ones, params), params) > 1.0 - 1e-3).float()


def _flip(x: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Flip each sample of ``x`` ``(B, C, *spatial)`` along the axes where ``flips[b]`` is True (an involution)."""
    for axis in range(flips.shape[1]):
        # the draws live on the CPU: testing them costs no device synchronisation
        if bool(flips[:, axis].any()):
            mask = flips[:, axis].to(x.device).view(-1, *([1] * (x.ndim - 1)))
            x = torch.where(mask, x.flip(axis + 2), x)
    return x
