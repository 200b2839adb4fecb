"""MONAI Label's ``BundleTrainTask`` for the monai_masksup bundles: training on saved labels, and on unlabelled studies."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import monai.bundle
from monai.bundle import ConfigParser

from monai_masksup.data import volume_bscan_items

from lib.bundle_catalog import SEMISUP_CONFIG, ServedBundle, bscan_split_training
from lib.model_publication import publish_best_model
from lib.study_files import split_by_dimension
from lib.torchvision_stand_in import torchvision_utils_stand_in

with torchvision_utils_stand_in():
    from monailabel.interfaces.datastore import Datastore
    from monailabel.tasks.train.bundle import BundleTrainTask
    from monailabel.utils.others.generic import strtobool

logger = logging.getLogger(__name__)

__all__ = ["MaskSupBundleTrainTask"]


class MaskSupBundleTrainTask(BundleTrainTask):
    """
    Train a bundle's ``train.json`` on the labels saved in MONAI Label's datastore and publish the best model.

    MONAI Label's ``BundleTrainTask`` hands the datastore's labelled images to ``train#dataset#data`` (and a
    split of them to ``validate#dataset#data``), sets the epochs and the device, and starts from
    ``models/model.pt``. What this task adds for the monai_masksup bundles:

    - ``overwrite``: the bundles' ``TrainingCheckpoint`` refuses a fresh run into a folder with an earlier run's
      files (HTTP 500 with the stock task);
    - ``label_threshold`` 0, for a bundle whose train config has that key: MONAI Label saves labels as class
      indices (1 = foreground), where the bundles' default thresholds are for 0/255 masks;
    - ``ckpt_dir`` and ``output_dir`` in :attr:`ServedBundle.work_dir`: MONAI Label offers every
      ``models/*.pt`` as a model file, so the interval checkpoints stay out of ``models/``; when the run ends
      the best model is copied to ``models/model.pt`` (:func:`~lib.model_publication.publish_best_model`), which
      the infer task reloads at its next request;
    - semi-supervised training: when the bundle has ``configs/train_semisup.json`` (an override merged over
      ``train.json``) and the request's ``semi_supervised`` is true, the datastore's unlabelled images go to
      ``train#unlabeled_dataset#data``. Without that file the task trains the supervised config and logs so;
    - only the studies of the bundle's dimension (:attr:`ServedBundle.dimension`): 2D image files for a 2D
      bundle, volume files for a volume bundle, as one studies folder may hold both; the others are counted in
      ``left_out``;
    - a bundle that trains on B-scans of volumes (:func:`~lib.bundle_catalog.bscan_split_training`:
      ``mlds_retinal_oct``) gets the saved labels as its split of B-scan items (training volumes as
      ``pixel``, validation volumes as ``test``), supervised, with the validation at the end of the run.

    Training runs on one device (``multi_gpu`` is off): MONAI Label's multi-GPU path, torchrun on an exported
    config, is untested with these bundles and would not publish the model.

    Each run writes ``last_train.json`` in the work folder: the config files, the numbers of training, validation and
    unlabelled images, whether it was semi-supervised and why not, and the published model.

    Args:
        bundle: the served bundle (its folder, and the extra configs).
        conf: the app's ``--conf`` options.
    """

    def __init__(self, bundle: ServedBundle, conf: dict[str, str]) -> None:
        self.served_bundle = bundle
        self._datastore: Datastore | None = None
        self._semi_supervised = False
        super().__init__(str(bundle.path), conf)

    def _load_bundle_config(self, path: str, config: str) -> ConfigParser:
        parser = ConfigParser()
        parser.read_config(self.served_bundle.train_config_files(semi_supervised=self._semi_supervised))
        parser.config.update({self.const.key_bundle_root(): path})
        return parser

    def config(self) -> dict[str, Any]:
        options = super().config()
        options["multi_gpu"] = False  # see __call__
        options["semi_supervised"] = self.served_bundle.has_semisup_config
        return options

    def __call__(self, request: dict[str, Any], datastore: Datastore) -> dict[str, Any]:
        wanted = bool(strtobool(str(request.get("semi_supervised", True))))
        self._semi_supervised = wanted and self.served_bundle.has_semisup_config
        self._datastore = datastore
        self._run_summary: dict[str, Any] = {"model": self.served_bundle.name, "semi_supervised": self._semi_supervised}
        if wanted and not self._semi_supervised:
            reason = (
                f"bundle {self.served_bundle.name} has no configs/{SEMISUP_CONFIG}: training the supervised "
                "train.json on the labelled images only"
            )
            logger.warning(reason)
            self._run_summary["supervised_because"] = reason
        # the parser is re-read per request: the semi-supervised override changes the config
        self.bundle_config = self._load_bundle_config(self.bundle_path, self.bundle_config_path)
        # one device: MONAI Label's multi-GPU path (torchrun on an exported config) is untested with these
        # bundles and would skip publishing the model
        request = {**request, "multi_gpu": False, "force_multi_gpu": False}
        result = super().__call__(request, datastore)
        return {**(result or {}), **self._run_summary}

    def _fetch_datalist(self, request: dict[str, Any], datastore: Datastore) -> list[dict[str, Any]]:
        datalist = super()._fetch_datalist(request, datastore)
        kept, left_out = split_by_dimension([item["image"] for item in datalist], self.served_bundle.dimension)
        kept_set = set(kept)
        self._run_summary["left_out"] = {"labelled": left_out}
        return [item for item in datalist if item["image"] in kept_set]

    def _update_overrides(self, overrides: dict[str, Any]) -> dict[str, Any]:
        work_dir = self.served_bundle.work_dir
        overrides.update(
            {
                "overwrite": True,
                "resume": False,
                "ckpt_dir": str(work_dir / "checkpoints"),
                "output_dir": str(work_dir),
            }
        )
        self._as_bscan_split(overrides)
        # only a bundle that binarises its masks by this key: another one's class-index labels stay as saved
        if "label_threshold" in self.bundle_config.config:
            overrides["label_threshold"] = 0
        self._run_summary["config_files"] = self.served_bundle.train_config_files(self._semi_supervised)
        if self._semi_supervised and self._datastore is not None:
            uris = [self._datastore.get_image_uri(i) for i in self._datastore.get_unlabeled_images()]
            kept, left_out = split_by_dimension(uris, self.served_bundle.dimension)
            overrides["train#unlabeled_dataset#data"] = [{"image": uri} for uri in kept]
            self._run_summary["unlabelled_images"] = len(kept)
            self._run_summary["unlabelled"] = kept
            self._run_summary["left_out"]["unlabelled"] = left_out
        return overrides

    def _as_bscan_split(self, overrides: dict[str, Any]) -> None:
        """
        Count the training and validation images; for a bundle of :func:`~lib.bundle_catalog.bscan_split_training`,
        move MONAI Label's lists into its split of B-scan items (and its fixed values and epochs), in place.
        """
        train_ds = overrides[self.const.key_train_dataset_data()]
        val_ds = overrides.get(self.const.key_validate_dataset_data()) or []
        self._run_summary["training_images"] = len(train_ds)
        self._run_summary["validation_images"] = len(val_ds)
        how = bscan_split_training(self.served_bundle.name)
        if how is None:
            return
        if not val_ds:
            # the bundle keeps only a model that passed validation: without validation volumes its run would end
            # in an evaluator error naming nothing
            raise ValueError(
                f"bundle {self.served_bundle.name}: MONAI Label's val_split left no validation volume "
                f"({len(train_ds)} labelled volume(s) for training, 0 for validation); label at least one more "
                "volume or raise val_split"
            )
        del overrides[self.const.key_train_dataset_data()]
        overrides.pop(self.const.key_validate_dataset_data(), None)

        def bscans(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            # each volume is its own subject: the datastore knows nothing of eyes or patients
            volumes = [{"image": item["image"], "label": item["label"], "subject": item["image"]} for item in items]
            return volume_bscan_items(volumes)

        overrides[how.split_key] = {"pixel": bscans(train_ds), "image": [], "unlabelled": [], "test": bscans(val_ds)}
        overrides.update(how.fixed)
        overrides[how.epochs_key] = overrides[self.const.key_train_trainer_max_epochs()]
        self._run_summary["bscan_split"] = {part: len(items) for part, items in overrides[how.split_key].items()}

    def run_single_gpu(self, request: dict[str, Any], overrides: dict[str, Any]) -> None:
        work_dir = self.served_bundle.work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        monai.bundle.run(
            run_id=request.get("run_id", "run"),
            init_id=None,
            final_id=None,
            meta_file=self.bundle_metadata_path,
            config_file=self.served_bundle.train_config_files(self._semi_supervised),
            **overrides,
        )
        published = publish_best_model(overrides["ckpt_dir"], self.served_bundle.path / "models")
        self._run_summary["published"] = str(published)
        (work_dir / "last_train.json").write_text(json.dumps(self._run_summary, indent=2) + "\n")
        logger.info(f"{self.served_bundle.name}: published {published}")
