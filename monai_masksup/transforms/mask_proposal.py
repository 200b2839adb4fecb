"""Object mask proposals for MaskContrast pre-training: from labels (supervised saliency), one per connected
component, or from an unsupervised intensity rule."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from .spatial_size import check_channel_first_image

__all__ = ["PROPOSAL_SOURCES", "MaskProposal", "MaskProposald", "connected_components", "otsu_threshold"]

PROPOSAL_SOURCES = ("label", "otsu_dark", "otsu_bright")


def otsu_threshold(values: torch.Tensor, bins: int = 256) -> float:
    """
    Otsu's threshold (IEEE Trans. SMC 1979) of ``values``: the histogram split that maximises the
    between-class variance. (MONAI's ``ForegroundMask`` takes it from scikit-image, not a dependency here.)

    Args:
        values: any tensor of intensities.
        bins: histogram bins over ``[min, max]``.

    Returns:
        the threshold; ``values >= threshold`` is the bright class. A constant input returns its value.
    """
    values = values.detach().float().reshape(-1)
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return lo
    hist = torch.histc(values.cpu(), bins=bins, min=lo, max=hi).double()
    centres = lo + (torch.arange(bins, dtype=torch.float64) + 0.5) * (hi - lo) / bins
    weight_dark = torch.cumsum(hist, 0)
    weight_bright = weight_dark[-1] - weight_dark
    sum_dark = torch.cumsum(hist * centres, 0)
    mean_dark = sum_dark / weight_dark.clamp_min(1e-12)
    mean_bright = (sum_dark[-1] - sum_dark) / weight_bright.clamp_min(1e-12)
    between = weight_dark * weight_bright * (mean_dark - mean_bright) ** 2
    split = int(torch.argmax(between[:-1]))
    # the threshold is the upper edge of the last dark bin
    return lo + (split + 1) * (hi - lo) / bins


def connected_components(mask: torch.Tensor, min_size: int = 1) -> torch.Tensor:
    """
    Label the connected components of a binary mask (full connectivity: 8 neighbours in 2D, 26 in 3D) by
    propagating the largest pixel index through every component with max-pooling; works on any device.

    Args:
        mask: ``(1, *spatial)`` binary mask, 2D or 3D.
        min_size: components of fewer pixels are dropped (set to background).

    Returns:
        ``(1, *spatial)`` int64 ids ``0`` (background), ``1..n`` in raster order of each component's last pixel.
    """
    fg = mask.bool()
    spatial = fg.shape[1:]
    pool = F.max_pool2d if len(spatial) == 2 else F.max_pool3d
    index = torch.arange(1, fg.numel() + 1, device=fg.device, dtype=torch.float64).reshape(fg.shape)
    labels = torch.where(fg, index, torch.zeros_like(index))
    # each pass moves the maximum one pixel on; a component is labelled after at most its geodesic length
    for _ in range(fg.numel()):
        grown = torch.where(fg, pool(labels.unsqueeze(0), 3, stride=1, padding=1).squeeze(0), labels)
        if torch.equal(grown, labels):
            break
        labels = grown
    values, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    keep = (values > 0) & (counts >= min_size)
    new_ids = torch.cumsum(keep.long(), 0) * keep.long()
    return new_ids[inverse].reshape(fg.shape)


class MaskProposal(Transform):
    """
    A mask proposal ``(1, *spatial)`` for MaskContrast (Van Gansbeke et al., ICCV 2021), whose reference uses
    the output of an unsupervised saliency estimator. Three sources:

    - ``"label"`` (supervised saliency): the foreground of a label, any channel ``> threshold`` (GLaS gland
      masks, Kvasir / CVC polyp masks).
    - ``"otsu_dark"`` / ``"otsu_bright"`` (unsupervised): the pixels whose mean intensity over the channels lies
      below / at or above :func:`otsu_threshold` of the image. For H&E tiles (GLaS) ``"otsu_dark"`` gives the
      stained tissue (nuclei, epithelium, stroma) against the bright lumens and background: a crude tissue
      proposal, not a gland segmentation, for images without labels (``glas_images_unlabelled``).

    With ``per_component=True`` every connected component becomes its own object, ids ``1..n``
    (:func:`connected_components`; GLaS glands are instances), and ``MaskContrastLoss`` then gives each its own
    prototype; otherwise the proposal is binary ``{0, 1}``. Components smaller than ``min_size`` pixels are
    dropped in that mode.

    Args:
        source: one of ``"label"``, ``"otsu_dark"``, ``"otsu_bright"``.
        threshold: the ``"label"`` foreground threshold (``> threshold``; 127 for 0/255 JPEG masks).
        per_component: one object id per connected component.
        min_size: smallest component kept with ``per_component``, in pixels.

    Raises:
        ValueError: for an unknown ``source`` or a ``min_size`` below 1.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self, source: str = "label", threshold: float = 0.0, per_component: bool = False, min_size: int = 1
    ) -> None:
        if source not in PROPOSAL_SOURCES:
            raise ValueError(f"MaskProposal: `source` must be one of {PROPOSAL_SOURCES}, got {source!r}.")
        if int(min_size) < 1:
            raise ValueError(f"MaskProposal: `min_size` must be at least 1, got {min_size}.")
        self.source = source
        self.threshold = float(threshold)
        self.per_component = bool(per_component)
        self.min_size = int(min_size)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first ``(C, *spatial)`` label (``source="label"``) or image (the Otsu rules).

        Returns:
            ``(1, *spatial)`` float proposal of ``img``'s array type: ``{0, 1}``, or ids ``0..n`` with
            ``per_component``.
        """
        check_channel_first_image(img, "MaskProposal input")
        data = convert_to_tensor(img, track_meta=False).float()
        if self.source == "label":
            fg = (data > self.threshold).any(0, keepdim=True)
        else:
            grey = data.mean(0, keepdim=True)
            t = otsu_threshold(grey)
            fg = grey < t if self.source == "otsu_dark" else grey >= t
        out = connected_components(fg, self.min_size) if self.per_component else fg
        return convert_to_dst_type(out.float(), img, dtype=torch.float32)[0]


class MaskProposald(MapTransform):
    """
    Dictionary version of :class:`MaskProposal`: write the proposal of ``keys`` (a label, or an image for the
    unsupervised rules) under ``proposal_key`` (by default over the label itself).

    Args:
        keys: the one key the proposal is made from.
        proposal_key: where to store the proposal; ``None`` overwrites the key.
        source, threshold, per_component, min_size: as :class:`MaskProposal`.
        allow_missing_keys: do not raise if the key is missing.

    Raises:
        ValueError: when ``keys`` names more than one key.
    """

    backend = MaskProposal.backend

    def __init__(
        self,
        keys: KeysCollection,
        proposal_key: str | None = None,
        source: str = "label",
        threshold: float = 0.0,
        per_component: bool = False,
        min_size: int = 1,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"MaskProposald: `keys` must name one key, got {self.keys}.")
        self.proposal_key = proposal_key
        self.proposal = MaskProposal(source, threshold, per_component, min_size)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.proposal_key or key] = self.proposal(d[key])
        return d
