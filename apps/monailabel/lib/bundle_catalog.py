"""Which bundles the MONAI Label app serves, with which config files, and under which label names.

This module imports neither MONAI Label nor torch, so the test suite checks it in the project's own environment.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ServedBundle",
    "default_bundles_dir",
    "split_names",
    "find_bundles",
    "published_labels",
    "served_labels",
    "served_dimension",
    "infer_task_names",
    "BScanSplitTraining",
    "bscan_split_training",
    "SEMISUP_CONFIG",
    "INPUT_KIND_KEY",
    "INPUT_KINDS",
]

# the override that the semi-supervised training merges over train.json (issue #13); its unlabelled list
# is at `train#unlabeled_dataset#data`
SEMISUP_CONFIG = "train_semisup.json"

#: the inference config key of a bundle that reads volumes and B-scan images with different preprocessing
#: (``mlds_retinal_oct``); its command-line run takes the kind from the listed input folder
INPUT_KIND_KEY = "input_kind"
#: the input kinds of such a bundle, each served as its own infer task: ``{kind: (task name suffix, dimension)}``
INPUT_KINDS = {"volumes": ("", 3), "bscans": ("_bscans", 2)}

@dataclass(frozen=True)
class BScanSplitTraining:
    """
    How a bundle that trains on B-scans of volumes takes MONAI Label's saved labels (``mlds_retinal_oct``).

    Its ``train.json`` builds the training and validation B-scans from a split of B-scan items
    (``{"pixel", "image", "unlabelled", "test"}``, each a list of volume items with a ``"bscan"`` index), not from
    ``train#dataset#data`` / ``validate#dataset#data``. The app hands it the saved labels as that split instead:
    the training volumes' B-scans as ``pixel``, the validation volumes' as ``test``, nothing image-labelled or
    unlabelled.

    Args:
        split_key: the config key of the split.
        fixed: config values set with it: the layout whose reader opens the datastore's volumes (``retouch``:
            ITK, for MetaImage and NIfTI), the supervised mode (the split has no unlabelled part).
        epochs_key: the key that the validation interval follows (validation at the end of the run).
    """

    split_key: str
    fixed: Mapping[str, object]
    epochs_key: str


_BSCAN_SPLIT_TRAINING = {
    "mlds_retinal_oct": BScanSplitTraining(
        split_key="split", fixed={"layout": "retouch", "mode": "supervised"}, epochs_key="epochs"
    ),
}


def bscan_split_training(name: str) -> BScanSplitTraining | None:
    """How bundle ``name`` takes saved labels as a split of B-scan items, or ``None`` for a list-taking bundle."""
    return _BSCAN_SPLIT_TRAINING.get(name)


# the labels of a bundle configured for fewer classes than its metadata's channel_def names:
# {(bundle, num_classes): labels}
_LABELS_BY_NUM_CLASSES = {
    # a model trained with --layout duke: Duke DME's one fluid class (bundles/mlds_retinal_oct/docs/README.md)
    ("mlds_retinal_oct", 2): {"fluid": 1},
}

_NOTE_IN_PARENTHESES = re.compile(r"\s*\(.*\)\s*$")


@dataclass(frozen=True)
class ServedBundle:
    """
    One bundle as the app serves it.

    Args:
        name: the bundle folder's name, which is also the model name in MONAI Label's REST API.
        path: the bundle folder (``configs/``, and ``models/model.pt`` once trained).
        extra_configs: file names in ``configs/`` merged, in order, over ``inference.json`` and ``train.json``
            (e.g. ``demo.json``, which swaps in a small network), as ``--config_file "[...]"`` would.
    """

    name: str
    path: Path
    extra_configs: tuple[str, ...] = ()

    def config_files(self, main: str) -> list[str]:
        """The config files, ``main`` first, as absolute paths for ``ConfigParser.read_config``."""
        return [str(self.path / "configs" / name) for name in (main, *self.extra_configs)]

    def train_config_files(self, semi_supervised: bool) -> list[str]:
        """
        ``train.json``, then :data:`SEMISUP_CONFIG` when ``semi_supervised`` (it is an override merged over
        ``train.json``), then the extra configs.
        """
        files = self.config_files("train.json")
        if semi_supervised:
            files.insert(1, str(self.path / "configs" / SEMISUP_CONFIG))
        return files

    @property
    def has_semisup_config(self) -> bool:
        """Whether the bundle ships the semi-supervised override :data:`SEMISUP_CONFIG`."""
        return (self.path / "configs" / SEMISUP_CONFIG).is_file()

    def inference_config(self) -> dict:
        """``inference.json`` with the extra configs merged over it key by key (unparsed); ``{}`` without it."""
        inference: dict = {}
        for config in self.config_files("inference.json"):
            if Path(config).is_file():
                inference.update(json.loads(Path(config).read_text()))
        return inference

    @property
    def dimension(self) -> int:
        """
        :func:`served_dimension` of the bundle: its ``metadata.json`` and :meth:`inference_config`; for a bundle
        with input kinds (:func:`infer_task_names`), that of the task named after the bundle (volumes).
        """
        metadata = json.loads((self.path / "configs" / "metadata.json").read_text())
        inference = self.inference_config()
        if INPUT_KIND_KEY in inference:
            inference[INPUT_KIND_KEY] = next(iter(INPUT_KINDS))
        return served_dimension(metadata, inference)

    @property
    def work_dir(self) -> Path:
        """
        Where the app's training runs keep interval checkpoints, TensorBoard logs and ``last_train.json``: under
        the bundle's ``eval/``, so that MONAI Label, which offers every ``models/*.pt`` as a selectable model,
        sees only the published ``models/model.pt``.
        """
        return self.path / "eval" / "monailabel"


def default_bundles_dir(app_dir: str | os.PathLike) -> Path:
    """The project's ``bundles/`` folder, two levels above the app folder ``apps/monailabel``."""
    return Path(app_dir).resolve().parent.parent / "bundles"


def split_names(value: str | Sequence[str] | None) -> list[str]:
    """``"a, b"`` or ``["a", "b"]`` as ``["a", "b"]``; ``None`` or ``""`` as ``[]``."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item and item.strip()]


def find_bundles(
    bundles_dir: str | os.PathLike, models: str | Sequence[str] | None = "all", extra_configs: Sequence[str] = ()
) -> dict[str, ServedBundle]:
    """
    The bundles to serve: the sub-folders of ``bundles_dir`` with a ``configs/metadata.json``, or the ones named.

    Args:
        bundles_dir: the folder holding the bundle folders (``masksup_glas``, ``masksup_kvasir``, ...).
        models: ``"all"`` (or empty), or bundle names as a comma-separated string or a sequence.
        extra_configs: config file names merged over each bundle's main configs; each must exist in every
            bundle served.

    Returns:
        ``{name: ServedBundle}``, sorted by name.

    Raises:
        FileNotFoundError: ``bundles_dir`` is not a folder, a named bundle is not in it, or an extra config is
            missing; the message names the folder or file and what is there.
        ValueError: ``bundles_dir`` holds no bundle.
    """
    folder = Path(bundles_dir).expanduser().resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"bundles folder {folder} does not exist: set --conf bundles <folder of bundles>")
    available = sorted(p.name for p in folder.iterdir() if (p / "configs" / "metadata.json").is_file())
    if not available:
        raise ValueError(f"bundles folder {folder} holds no bundle (no <name>/configs/metadata.json)")
    names = split_names(models)
    if not names or names == ["all"]:
        names = available
    unknown = [name for name in names if name not in available]
    if unknown:
        raise FileNotFoundError(
            f"bundle(s) {', '.join(unknown)} not found in {folder}; available: {', '.join(available)}"
        )
    served = {}
    for name in sorted(names):
        bundle = ServedBundle(name=name, path=folder / name, extra_configs=tuple(extra_configs))
        for config in bundle.config_files("metadata.json")[1:]:
            if not Path(config).is_file():
                raise FileNotFoundError(f"extra config {config} (from --conf configs) does not exist in bundle {name}")
        served[name] = bundle
    return served


def published_labels(metadata: Mapping | str | os.PathLike) -> dict[str, int]:
    """
    The labels a bundle's masks carry in MONAI Label: ``{"polyp": 1}`` for a one-channel foreground output.

    MONAI Label's ``BundleInferTask`` names labels after the output's ``channel_def`` and numbers them by channel,
    giving ``{"polyp (foreground logit)": 0}``: a client then reads the mask's 1s as an unnamed label and its
    name as the background value. The app writes masks of class indices (0 background, 1 foreground), so a
    one-channel sigmoid output publishes its channel name, without the remark in parentheses, as label 1;
    a multi-channel output publishes channel ``k`` as label ``k`` (``"background"`` left out).

    Args:
        metadata: the bundle's ``metadata.json`` as a mapping, or its path.

    Returns:
        ``{label name: mask value}``.

    Raises:
        ValueError: the metadata has no output with a ``channel_def``; the message names the bundle's metadata.
    """
    if not isinstance(metadata, Mapping):
        source = str(metadata)
        metadata = json.loads(Path(metadata).read_text())
    else:
        source = "metadata"
    outputs = metadata.get("network_data_format", {}).get("outputs", {})
    channel_def = next(iter(outputs.values()), {}).get("channel_def") if outputs else None
    if not channel_def:
        raise ValueError(f"{source}: network_data_format.outputs has no channel_def to name the labels")
    names = {int(k): _NOTE_IN_PARENTHESES.sub("", v).strip().lower() for k, v in channel_def.items()}
    if len(names) == 1:
        return {next(iter(names.values())): 1}
    return {name: k for k, name in sorted(names.items()) if name != "background"}


def served_dimension(metadata: Mapping, inference_config: Mapping) -> int:
    """
    The dimension of the studies a bundle segments: 2 for frames, 3 for volumes.

    MONAI Label's ``BundleInferTask`` takes the number of axes of the input's ``spatial_shape`` in the metadata
    (3 when there is none). A bundle whose inference config sets :data:`INPUT_KIND_KEY` to one of
    :data:`INPUT_KINDS` has that kind's dimension (``volumes`` 3, ``bscans`` 2). A volume bundle whose 2D
    network runs B-scan by B-scan (an ``inferer`` that is
    MONAI's ``SliceInferer``, or ``monai_masksup.data.bscan_slice_inferer``) declares a 2D ``spatial_shape``
    but segments volumes: it is served as 3D, so clients send volumes and get volume masks back.

    Args:
        metadata: the bundle's ``metadata.json`` as a mapping.
        inference_config: its ``inference.json`` (with any extra configs merged) as a mapping.

    Returns:
        2 or 3.
    """
    inputs = metadata.get("network_data_format", {}).get("inputs", {})
    spatial_shape = next(iter(inputs.values()), {}).get("spatial_shape") if inputs else None
    dimension = len(spatial_shape) if spatial_shape else 3
    kind = inference_config.get(INPUT_KIND_KEY)
    if kind in INPUT_KINDS:
        return INPUT_KINDS[kind][1]
    inferer = inference_config.get("inferer")
    target = str(inferer.get("_target_", "")) if isinstance(inferer, Mapping) else str(inferer or "")
    if dimension == 2 and ("SliceInferer" in target or "slice_inferer" in target):
        return 3
    return dimension


def infer_task_names(name: str, inference_config: Mapping) -> dict[str, str | None]:
    """
    The infer tasks that serve one bundle: ``{task name: input kind}``.

    A bundle whose inference config has the key :data:`INPUT_KIND_KEY` (``mlds_retinal_oct``: volumes and B-scan
    images take different readers and inferers) is served once per kind of :data:`INPUT_KINDS`, each task with
    the key set, so that the config never lists an input folder nor generates demo data: volumes under the
    bundle's name, B-scan images under ``<name>_bscans``. Any other bundle is one task named after it.

    Args:
        name: the bundle's name.
        inference_config: its ``inference.json`` (with any extra configs merged) as a mapping.

    Returns:
        ``{task name: kind}``, the kind ``None`` for a bundle without input kinds.
    """
    if INPUT_KIND_KEY not in inference_config:
        return {name: None}
    return {name + suffix: kind for kind, (suffix, _) in INPUT_KINDS.items()}



def served_labels(name: str, metadata: Mapping | str | os.PathLike, num_classes: int | None = None) -> dict[str, int]:
    """
    The labels bundle ``name`` is published under, for a config of ``num_classes`` classes.

    :func:`published_labels` of the metadata, unless the served config's ``num_classes`` differs from the number of
    channels its ``channel_def`` names: then the labels of that class count, where the app knows them
    (``mlds_retinal_oct`` with ``num_classes`` 2, a Duke DME model: ``{"fluid": 1}``).

    Args:
        name: the bundle's name.
        metadata: its ``metadata.json`` as a mapping, or its path.
        num_classes: the served config's ``num_classes`` (background included), ``None`` when it has none.

    Returns:
        ``{label name: mask value}``.

    Raises:
        ValueError: ``num_classes`` differs from the ``channel_def`` and the app knows no labels for it; the
            message names the bundle and both numbers.
    """
    if not isinstance(metadata, Mapping):
        metadata = json.loads(Path(metadata).read_text())
    labels = published_labels(metadata)
    channels = len(next(iter(metadata["network_data_format"]["outputs"].values()))["channel_def"])
    if num_classes is None or num_classes == channels:
        return labels
    if (name, num_classes) in _LABELS_BY_NUM_CLASSES:
        return dict(_LABELS_BY_NUM_CLASSES[(name, num_classes)])
    raise ValueError(
        f"bundle {name} is configured for num_classes={num_classes}, but its metadata.json's channel_def names "
        f"{channels} channels: the labels to publish are unknown"
    )
