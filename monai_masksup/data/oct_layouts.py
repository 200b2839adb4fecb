"""The four OCT storage layouts of the retinal-OCT bundle behind one interface: B-scan items, loading, data sets."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.data import GridPatchDataset, IterableDataset, ShuffleBuffer
from monai.data.utils import set_rnd
from monai.transforms import Compose
from monai.utils import MAX_SEED

from .annotated_columns import DEFAULT_IGNORE_VALUE
from .bscan_folders import index_bscan_folders
from .demo_data import generate_demo_set_once, log_demo_notice
from .duke_oct import ColumnRanges, duke_oct_transforms, index_duke_oct
from .errors import DataFileError, DatasetLayoutError
from .layout import IMAGE_SUFFIXES, list_image_files
from .nifti_volumes import index_nifti_volumes
from .oct_bscans import BScanIterd, bscan_png_volume_transforms, oct_bscan_dataset, oct_volume_transforms
from .oct_splits import group_bscans_by_volume, volume_bscan_items
from .retouch import index_retouch
from .synthetic_oct import make_synthetic_retouch

__all__ = [
    "OCT_LAYOUTS",
    "OCT_DEMO_SHAPE",
    "OCT_DEMO_FOLDER",
    "index_oct_bscans",
    "oct_loading_transforms",
    "oct_bscan_set",
    "OCTBScanStream",
    "oct_bscan_stream",
    "load_oct_bscans",
    "oct_data_or_demo",
    "OCT_INFERENCE_INPUTS",
    "list_oct_inference_inputs",
]

#: ``retouch``: RETOUCH ``.mhd`` volumes (ITK); ``nifti``: NIfTI volumes (NiBabel); ``bscans``: volumes stored as
#: folders of PNG B-scans; ``duke``: the Duke DME export of single annotated B-scans.
OCT_LAYOUTS: tuple[str, ...] = ("retouch", "nifti", "bscans", "duke")
#: ``(n_bscans, depth, width)`` of each generated demo volume (2 volumes of each of the 3 RETOUCH vendors).
OCT_DEMO_SHAPE: tuple[int, int, int] = (8, 48, 64)
#: folder of the generated demo set inside the bundle's demo-data folder
OCT_DEMO_FOLDER = "retouch_synthetic"
_VOLUME_SUFFIXES = (".mhd", ".nii", ".gz")
#: what the inference config accepts in ``--input_dir``
OCT_INFERENCE_INPUTS = (
    "a folder of OCT volumes (.mhd with their .raw, .nii, .nii.gz; B-scans along the last axis) or of 2D B-scan "
    "images (.png, .jpg, .bmp, .tif), not both"
)
_BSCAN_KEY = "bscan"
_PART_KEY = "oct_part"
_EPOCH_SEED_STRIDE = 100_003


def _check_layout(layout: str) -> str:
    if layout not in OCT_LAYOUTS:
        raise ValueError(f"`layout` must be one of {list(OCT_LAYOUTS)}, got {layout!r}.")
    return layout


def index_oct_bscans(
    layout: str,
    dataset_dir: str | os.PathLike,
    label_dir: str | os.PathLike | None = None,
    annotated_columns: ColumnRanges = None,
) -> list[dict]:
    """One item per pixel-labelled B-scan of a data set, each with its ``"subject"``, for the repeated splits.

    - ``"retouch"``: :func:`index_retouch` on ``dataset_dir``; one item per B-scan of each volume (``"bscan"``:
      its index), counted from the ``.mhd`` headers.
    - ``"nifti"``: :func:`index_nifti_volumes` with images in ``dataset_dir`` and labels in ``label_dir``.
    - ``"bscans"``: :func:`index_bscan_folders` on ``dataset_dir`` (every volume must have its ``labels/``).
    - ``"duke"``: :func:`index_duke_oct` on ``dataset_dir`` with ``annotated_columns`` (the B-scans are the items).

    Args:
        layout: one of :data:`OCT_LAYOUTS`.
        dataset_dir: the data set's folder.
        label_dir: the label folder of the ``"nifti"`` layout (required there, unused elsewhere).
        annotated_columns: the Duke option of the same name (ignored columns); ``None`` elsewhere.

    Returns:
        B-scan items (volume layouts: the volume item plus ``"bscan"``; Duke: its items).

    Raises:
        ValueError: for an unknown layout, a NIfTI layout without ``label_dir``, or ``annotated_columns`` outside
            the Duke layout.
        DatasetLayoutError, DataFileError: from the indexers, naming the folder or file; ``DataFileError`` (a
            ``ValueError``) also for a B-scan-folder volume without its ``labels`` folder.
    """
    _check_layout(layout)
    if annotated_columns is not None and layout != "duke":
        raise ValueError(f"`annotated_columns` applies to the 'duke' layout only, not {layout!r}.")
    if layout == "duke":
        return index_duke_oct(dataset_dir, annotated_columns=annotated_columns)
    if layout == "retouch":
        return volume_bscan_items(index_retouch(dataset_dir), bscan_key=_BSCAN_KEY)
    if layout == "nifti":
        if label_dir is None:
            raise ValueError("the 'nifti' layout needs `label_dir`, the folder of the label volumes.")
        return volume_bscan_items(index_nifti_volumes(dataset_dir, label_dir), bscan_key=_BSCAN_KEY)
    volumes = index_bscan_folders(dataset_dir)
    unlabelled = [v["volume"] for v in volumes if "label" not in v]
    if unlabelled:
        raise DataFileError(
            f"B-scan folders: volume '{Path(dataset_dir) / unlabelled[0]}' has no 'labels' folder; every volume of "
            "the training data needs its pixel labels (they are hidden by the split, not by the files)."
        )
    return [dict(v, **{_BSCAN_KEY: k}) for v in volumes for k in range(len(v["image"]))]


def oct_loading_transforms(
    layout: str,
    num_classes: int = 4,
    ignore_value: float = DEFAULT_IGNORE_VALUE,
    lower: float = 1.0,
    upper: float = 99.0,
) -> list:
    """The transforms that load one item of the layout: a normalised volume, or a normalised Duke B-scan.

    Volumes come out as ``(1, width, depth, n_bscans)`` (normalised per volume, labels checked against
    ``0 .. num_classes - 1``); Duke B-scans as ``(1, width, height)`` (normalised per B-scan, fluid in {0, 1},
    unannotated columns ``ignore_value``).

    Args:
        layout: one of :data:`OCT_LAYOUTS`.
        num_classes: number of classes, background included (4 for RETOUCH, 2 for Duke).
        ignore_value: label value of unannotated Duke columns.
        lower: lower percentile of the intensity normalisation.
        upper: upper percentile of the intensity normalisation.

    Returns:
        a list of MONAI transforms.
    """
    _check_layout(layout)
    if layout == "duke":
        return duke_oct_transforms(ignore_value=ignore_value, lower=lower, upper=upper)
    if layout == "bscans":
        return bscan_png_volume_transforms(num_classes=num_classes, lower=lower, upper=upper)
    reader = "ITKReader" if layout == "retouch" else "NibabelReader"
    return oct_volume_transforms(reader=reader, num_classes=num_classes, lower=lower, upper=upper)


def oct_bscan_set(
    layout: str, bscan_items: Sequence[dict], loading: Sequence[Callable], bscan_transforms: Sequence[Callable] = ()
) -> IterableDataset:
    """The B-scans of some B-scan items as an iterable MONAI data set, each volume loaded once.

    Volume layouts: the items are grouped by volume (:func:`group_bscans_by_volume`) and cut by
    :func:`oct_bscan_dataset` (MONAI's ``GridPatchDataset``); Duke: a MONAI ``IterableDataset`` of the B-scans.
    Either way ``bscan_transforms`` run on each 2D B-scan ``(C, width, depth)``.

    Args:
        layout: one of :data:`OCT_LAYOUTS`.
        bscan_items: items of :func:`index_oct_bscans` (e.g. one part of a split).
        loading: :func:`oct_loading_transforms` of the layout.
        bscan_transforms: transforms of every B-scan item.

    Returns:
        an iterable data set of B-scan items (no length: give an evaluator's loader as it is, a trainer's an
        ``epoch_length``).
    """
    _check_layout(layout)
    if layout == "duke":
        return IterableDataset(list(bscan_items), transform=Compose([*loading, *bscan_transforms]))
    return oct_bscan_dataset(
        group_bscans_by_volume(bscan_items, bscan_key=_BSCAN_KEY),
        volume_transforms=loading,
        bscan_transforms=list(bscan_transforms) or None,
    )


class _PartTransforms:
    """Run the transforms of the part (``"image"``, ``"unlabelled"``...) that a B-scan item belongs to."""

    def __init__(self, part_transforms: Mapping[str, Sequence[Callable]]) -> None:
        self.parts = list(part_transforms)
        # a list, not a dict, so that MONAI's set_rnd reaches the random transforms
        self.composes = [Compose(list(part_transforms[part])) for part in self.parts]

    def __call__(self, data: dict) -> dict:
        item = dict(data)
        return self.composes[self.parts.index(item.pop(_PART_KEY))](item)


class OCTBScanStream(ShuffleBuffer):
    """
    MONAI's ``ShuffleBuffer`` over the B-scans of several parts of a split (built by :func:`oct_bscan_stream`),
    whose draws in an epoch depend only on the seed, the epoch and the passes started in it.

    ``ShuffleBuffer`` moves its seed on at every pass, so a run resumed from a checkpoint would shuffle
    differently from the uninterrupted run. :meth:`set_epoch`, which :meth:`attach` calls at every epoch start of
    the trainer, resets both shuffles and the random B-scan transforms from ``(seed, epoch)``; with the
    trainer's unlabelled loader restarting at every epoch
    (:class:`~monai_masksup.engines.unlabeled_stream.UnlabeledStream`), a run resumed at an epoch boundary draws
    the same unlabelled B-scans, flipped the same way, as the uninterrupted run.

    Args:
        bscans: the iterable of transformed B-scan items.
        units: the ``ShuffleBuffer`` of volume (Duke: B-scan) items that ``bscans`` reads.
        part_transforms: the random B-scan transforms, re-seeded by :meth:`set_epoch`.
        buffer_size: B-scans held in the shuffle buffer.
        seed: the base seed.
    """

    def __init__(
        self, bscans: Iterable, units: ShuffleBuffer, part_transforms: _PartTransforms, buffer_size: int, seed: int
    ) -> None:
        super().__init__(bscans, buffer_size=int(buffer_size), seed=int(seed))
        self.base_seed = int(seed)
        self.units = units
        self.part_transforms = part_transforms

    def set_epoch(self, epoch: int) -> None:
        """Reset the shuffles and the random transforms for ``epoch`` (1-based)."""
        # passes of one epoch move the seeds on by one each; epochs are far enough apart never to meet
        seed = (self.base_seed + _EPOCH_SEED_STRIDE * int(epoch)) % MAX_SEED
        self.seed = seed
        self.units.seed = (seed + _EPOCH_SEED_STRIDE // 2) % MAX_SEED
        set_rnd(self.part_transforms, seed)

    def attach(self, engine: Any) -> None:
        """Call :meth:`set_epoch` at every ``EPOCH_STARTED`` of ``engine`` (an Ignite engine)."""
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, lambda e: self.set_epoch(e.state.epoch))


def oct_bscan_stream(
    layout: str,
    parts: Mapping[str, Sequence[dict]],
    loading: Sequence[Callable],
    part_transforms: Mapping[str, Sequence[Callable]],
    buffer_size: int = 256,
    seed: int = 0,
) -> OCTBScanStream:
    """The B-scans of several parts of a split, as one shuffled stream, each part with its own B-scan transforms.

    The unlabelled stream of Self-Taught / Mean-Taught: image-labelled B-scans (their mask becomes an image-level
    label) and unlabelled ones (their mask is dropped), mixed. Every pass visits the volumes (Duke: the B-scans) of
    all parts in a new random order (MONAI ``ShuffleBuffer`` over the volume items), and the B-scans go through a
    second ``ShuffleBuffer`` of ``buffer_size``: a short epoch, which a trainer starts with a fresh pass, draws from
    random volumes of every part rather than always from the first ones.

    Give the stream to a ``DataLoader`` with ``num_workers=0``: both buffers would share the items out among
    workers again. ``stream.attach(trainer)`` makes the draws of every epoch reproducible (:class:`OCTBScanStream`).

    Args:
        layout: one of :data:`OCT_LAYOUTS`.
        parts: B-scan items of :func:`index_oct_bscans` by part name (e.g. ``{"image": ..., "unlabelled": ...}``).
        loading: :func:`oct_loading_transforms` of the layout.
        part_transforms: the transforms of each part's B-scan items, by the same names.
        buffer_size: B-scans held in the shuffle buffer.
        seed: seed of the shuffles (they move on at every pass).

    Returns:
        the shuffled stream of transformed B-scan items, an :class:`OCTBScanStream`.

    Raises:
        ValueError: when a part has no transforms.
    """
    _check_layout(layout)
    missing = sorted(set(parts) - set(part_transforms))
    if missing:
        raise ValueError(f"no B-scan transforms for the part(s) {missing}.")
    per_part = _PartTransforms({part: part_transforms[part] for part in parts})
    if layout == "duke":
        items = [dict(item, **{_PART_KEY: part}) for part, part_items in parts.items() for item in part_items]
        units = ShuffleBuffer(items, buffer_size=max(len(items), 1), seed=int(seed))
        bscans = IterableDataset(units, transform=Compose([*loading, per_part]))
    else:
        volumes = [
            dict(volume, **{_PART_KEY: part})
            for part, part_items in parts.items()
            for volume in group_bscans_by_volume(part_items, bscan_key=_BSCAN_KEY)
        ]
        units = ShuffleBuffer(volumes, buffer_size=max(len(volumes), 1), seed=int(seed))
        bscans = GridPatchDataset(
            data=units,
            patch_iter=BScanIterd(volume_transform=Compose(list(loading))),
            transform=per_part,
            with_coordinates=False,
        )
    return OCTBScanStream(bscans, units, per_part, buffer_size=buffer_size, seed=seed)


def load_oct_bscans(
    layout: str, bscan_items: Sequence[dict], loading: Sequence[Callable], bscan_transforms: Sequence[Callable] = ()
) -> list[dict]:
    """The loaded B-scans of some B-scan items, in memory (for the few pixel-labelled B-scans of a split).

    A list gives the training loader a length (epochs of one pass) and lets it shuffle; each volume is read once.

    Args:
        layout, bscan_items, loading, bscan_transforms: as :func:`oct_bscan_set`.

    Returns:
        the loaded 2D B-scan items.
    """
    return list(oct_bscan_set(layout, bscan_items, loading, bscan_transforms))


def oct_data_or_demo(
    layout: str,
    dataset_dir: str | os.PathLike | None,
    demo_dir: str | os.PathLike,
    action: str = "training",
) -> str:
    """The folder the retinal-OCT bundle reads: ``dataset_dir`` when configured, else the generated demo set.

    Without a configured data set (``dataset_dir`` is ``None``, layout ``"retouch"``) six OCT-like volumes
    (:func:`make_synthetic_retouch`: 2 volumes of each vendor, :data:`OCT_DEMO_SHAPE`, seed 0: layered retina
    with IRF, SRF and PED pockets) are written once as real MetaImage files in ``<demo_dir>/retouch_synthetic``
    in the RETOUCH layout, read by the same ITK path as RETOUCH, and the log says so. A configured folder is
    returned as given: when it is missing the layout's indexer raises an error naming it.

    Args:
        layout: the configured layout (:data:`OCT_LAYOUTS`).
        dataset_dir: the configured data folder, or ``None``.
        demo_dir: the folder that holds generated demo sets.
        action: what the bundle does with the data, for the log line.

    Returns:
        the folder to index, as a string.

    Raises:
        ValueError: when ``dataset_dir`` is an empty string, or missing for a layout other than ``"retouch"``.
        DatasetLayoutError: when the demo folder exists but holds no complete generated set.
    """
    _check_layout(layout)
    if dataset_dir is not None:
        if not str(dataset_dir).strip():
            raise ValueError("`dataset_dir` is an empty string: give the OCT data folder, or leave the option out.")
        return str(dataset_dir)
    if layout != "retouch":
        raise ValueError(
            f"layout {layout!r} needs --dataset_dir (the generated demo set is in the 'retouch' layout only)."
        )
    folder = Path(demo_dir).resolve() / OCT_DEMO_FOLDER
    generate_demo_set_once(
        folder,
        "Topcon/TRAIN006/reference.mhd",
        lambda out: make_synthetic_retouch(out, n_volumes=2, shape=OCT_DEMO_SHAPE),
    )
    log_demo_notice(folder, action, "--dataset_dir", "RETOUCH, Duke DME or your own OCT data")
    return str(folder)


def list_oct_inference_inputs(input_dir: str | os.PathLike) -> dict:
    """The inputs of the retinal-OCT inference: the volumes or the B-scan images directly inside ``input_dir``.

    Args:
        input_dir: the folder to list (not recursive).

    Returns:
        ``{"kind": "volumes" | "bscans", "files": [path, ...]}`` in natural name order.

    Raises:
        DatasetLayoutError: naming the folder when it is missing, holds neither kind, or holds both.
    """
    files = list_image_files(
        input_dir, "OCT inference input", OCT_INFERENCE_INPUTS, "your own data (set --input_dir)",
        suffixes=(*IMAGE_SUFFIXES, *_VOLUME_SUFFIXES),
    )  # fmt: skip
    volumes = [f for f in files if f.name.lower().endswith((".mhd", ".nii", ".nii.gz"))]
    images = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
    # the listing matches single suffixes, so ".gz" lets in any gzip file: only ".nii.gz" is a volume
    others = [f for f in files if f not in volumes and f not in images]
    if others:
        raise DatasetLayoutError(
            f"OCT inference input '{others[0]}' is neither a volume nor a B-scan image: give {OCT_INFERENCE_INPUTS}."
        )
    if volumes and images:
        raise DatasetLayoutError(
            f"OCT inference input '{input_dir}' holds volumes ('{volumes[0].name}') and B-scan images "
            f"('{images[0].name}'): give {OCT_INFERENCE_INPUTS}."
        )
    if not volumes and not images:
        raise DatasetLayoutError(f"OCT inference input '{input_dir}' holds no volume and no B-scan image.")
    return {"kind": "volumes" if volumes else "bscans", "files": [str(f) for f in volumes or images]}
