"""OCT volumes normalised per volume and cut into B-scans with MONAI's ``GridPatchDataset`` and ``PatchIterd``."""

from __future__ import annotations

from collections.abc import Callable, Generator, Hashable, Mapping, Sequence

import numpy as np
from monai.config import KeysCollection
from monai.data import GridPatchDataset, PatchIterd
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    LoadImaged,
    ScaleIntensityRangePercentilesd,
    SqueezeDimd,
    Transposed,
)
from monai.utils import ensure_tuple

from .errors import DataFileError, source_name
from .label_values import CheckLabelValuesd

__all__ = [
    "BSCAN_INDEX_KEY",
    "BScanIterd",
    "oct_normalisation",
    "oct_volume_transforms",
    "bscan_png_volume_transforms",
    "oct_bscan_dataset",
]

#: key of the B-scan's index in its volume, in every B-scan item of :func:`oct_bscan_dataset`.
BSCAN_INDEX_KEY = "bscan_index"


def oct_normalisation(lower: float = 1.0, upper: float = 99.0, key: str = "image") -> ScaleIntensityRangePercentilesd:
    """Per-volume intensity normalisation: the ``lower``-``upper`` percentile range of each volume onto [0, 1].

    OCT devices differ in gain and bit depth (RETOUCH: Cirrus and Topcon 8-bit, Spectralis 16-bit), and speckle
    makes single extreme voxels common, so robust percentiles of the whole volume, not min/max and not per
    B-scan, set the range; values beyond it are clipped.

    Args:
        lower: lower percentile.
        upper: upper percentile.
        key: the image key.

    Returns:
        MONAI's ``ScaleIntensityRangePercentilesd`` with these settings.
    """
    return ScaleIntensityRangePercentilesd(key, lower=lower, upper=upper, b_min=0.0, b_max=1.0, clip=True)


def oct_volume_transforms(
    reader: str = "ITKReader",
    num_classes: int | None = 4,
    lower: float = 1.0,
    upper: float = 99.0,
    keys: KeysCollection = ("image", "label"),
) -> list:
    """Loading transforms of OCT volumes (RETOUCH ``.mhd``, NIfTI): ``(1, width, depth, n_bscans)``, normalised.

    Args:
        reader: MONAI reader name: ``"ITKReader"`` for RETOUCH's MetaImage files, ``"NibabelReader"`` for NIfTI.
        num_classes: labels must hold only ``0 .. num_classes - 1`` (4 for RETOUCH: background/IRF/SRF/PED);
            ``None`` skips the check.
        lower: lower percentile of :func:`oct_normalisation`.
        upper: upper percentile of :func:`oct_normalisation`.
        keys: image and label keys; the label may be absent from an item (unlabelled volumes).

    Returns:
        a list of MONAI transforms for ``Compose``.
    """
    keys = ensure_tuple(keys)
    transforms: list = [
        LoadImaged(keys=keys, reader=reader, ensure_channel_first=True, allow_missing_keys=True),
        oct_normalisation(lower, upper, key=keys[0]),
    ]
    if num_classes is not None and len(keys) > 1:
        transforms.append(CheckLabelValuesd(keys[1:], allowed=range(num_classes), allow_missing_keys=True))
    return transforms


def bscan_png_volume_transforms(
    num_classes: int | None = 4,
    lower: float = 1.0,
    upper: float = 99.0,
    keys: KeysCollection = ("image", "label"),
) -> list:
    """Loading transforms of a volume stored as grey PNG B-scans, the same result as :func:`oct_volume_transforms`.

    The item lists the B-scan files in order (``{"image": [png, ...], "label": [png, ...]}``, e.g. from
    :func:`~monai_masksup.data.write_bscan_pngs`). MONAI's ``LoadImaged`` stacks them first,
    ``(n_bscans, width, depth)``; moving that axis last and adding a channel gives ``(1, width, depth, n_bscans)``,
    the layout of a volume read by ``ITKReader``, and then the same per-volume normalisation applies.

    Args:
        num_classes: labels must hold only ``0 .. num_classes - 1``; ``None`` skips the check.
        lower: lower percentile of :func:`oct_normalisation`.
        upper: upper percentile of :func:`oct_normalisation`.
        keys: image and label keys; the label may be absent.

    Returns:
        a list of MONAI transforms for ``Compose``.
    """
    keys = ensure_tuple(keys)
    transforms: list = [
        LoadImaged(keys=keys, reader="PILReader", allow_missing_keys=True),
        Transposed(keys=keys, indices=(1, 2, 0), allow_missing_keys=True),
        EnsureChannelFirstd(keys=keys, channel_dim="no_channel", allow_missing_keys=True),
        oct_normalisation(lower, upper, key=keys[0]),
    ]
    if num_classes is not None and len(keys) > 1:
        transforms.append(CheckLabelValuesd(keys[1:], allowed=range(num_classes), allow_missing_keys=True))
    return transforms


class BScanIterd:
    """Yield the B-scans (last spatial axis) of a loaded volume item, optionally only the listed ones.

    A patch iterator for MONAI's ``GridPatchDataset``: it runs ``PatchIterd`` with patch size
    ``(full, full, 1)`` and removes the B-scan axis, so each patch is a 2D item ``(C, width, depth)`` with the
    volume's other keys (subject, vendor) copied, plus :data:`BSCAN_INDEX_KEY`. When the volume item lists
    B-scan indices under ``bscans_key`` (as the splits give them), only those are yielded (without that list):
    pixel-labelled, image-labelled and unlabelled B-scans of one volume can go to different datasets.

    With ``volume_transform`` the iterator also loads the volume: ``GridPatchDataset`` then iterates the plain
    datalist, which it shares out among ``DataLoader`` workers, so each worker loads only its own volumes.

    Args:
        keys: keys of the arrays to cut (those present in the item are cut; e.g. unlabelled volumes lack a label).
        bscans_key: item key listing the B-scan indices to keep; absent means all.
        volume_transform: applied to each volume item before cutting (loading, normalisation), or ``None`` for
            items that are loaded already.
    """

    def __init__(
        self,
        keys: KeysCollection = ("image", "label"),
        bscans_key: str = "bscans",
        volume_transform: Callable | None = None,
    ) -> None:
        self.keys = ensure_tuple(keys)
        self.bscans_key = bscans_key
        self.volume_transform = volume_transform

    def __call__(self, data: Mapping[Hashable, object]) -> Generator[tuple[dict, np.ndarray], None, None]:
        if self.volume_transform is not None:
            data = self.volume_transform(data)
        present = [k for k in self.keys if k in data]
        if not present:
            raise DataFileError(f"volume item has none of the keys {list(self.keys)} to cut into B-scans.")
        shape = data[present[0]].shape
        if len(shape) != 4:
            raise DataFileError(
                f"volume '{source_name(data[present[0]])}' has shape {tuple(shape)}; B-scan slicing needs "
                "(C, width, depth, n_bscans)."
            )
        wanted = data.get(self.bscans_key)
        keep = None if wanted is None else {int(k) for k in wanted}
        squeeze = SqueezeDimd(keys=present, dim=3)
        for patch, coords in PatchIterd(keys=present, patch_size=(None, None, 1), mode=None)(data):
            index = int(coords[-1][0])
            if keep is not None and index not in keep:
                continue
            item = squeeze(patch)
            item.pop(self.bscans_key, None)  # lists of different lengths would not collate into a batch
            item[BSCAN_INDEX_KEY] = index
            yield item, coords


def oct_bscan_dataset(
    volumes: Sequence[dict],
    volume_transforms: Sequence[Callable] | None = None,
    bscan_transforms: Sequence[Callable] | None = None,
    keys: KeysCollection = ("image", "label"),
    bscans_key: str = "bscans",
) -> GridPatchDataset:
    """B-scans of OCT volumes as an iterable MONAI dataset: ``GridPatchDataset`` over loaded, normalised volumes.

    Each volume is loaded and normalised once (``volume_transforms``, default :func:`oct_volume_transforms`),
    then cut into its B-scans (:class:`BScanIterd`), on which ``bscan_transforms`` (2D augmentation) run. With
    ``DataLoader`` workers, the volumes are shared out among them before loading (each loads only its own).
    ``GridPatchDataset`` is iterable, so shuffle B-scans with ``monai.data.ShuffleBuffer`` rather than the
    ``DataLoader``. It yields items only (``with_coordinates=False``): the B-scan index travels in the item as
    :data:`BSCAN_INDEX_KEY`, the volume's other keys (subject, vendor) too.

    Args:
        volumes: volume items (:func:`index_retouch`, :func:`index_nifti_volumes`, or PNG B-scan lists with
            :func:`bscan_png_volume_transforms`); an item may list B-scan indices under ``bscans_key``.
        volume_transforms: transforms of whole volumes; default :func:`oct_volume_transforms` (ITK).
        bscan_transforms: transforms of each 2D B-scan item, or ``None``.
        keys: keys to cut.
        bscans_key: item key listing the B-scans to keep.

    Returns:
        a ``GridPatchDataset`` yielding 2D B-scan items ``{"image": (C, width, depth), "label": ..., ...}``.
    """
    volume_transforms = oct_volume_transforms() if volume_transforms is None else volume_transforms
    return GridPatchDataset(
        data=list(volumes),
        patch_iter=BScanIterd(keys=keys, bscans_key=bscans_key, volume_transform=Compose(list(volume_transforms))),
        transform=None if not bscan_transforms else Compose(list(bscan_transforms)),
        with_coordinates=False,
    )
