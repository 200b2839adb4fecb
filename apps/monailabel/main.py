"""MONAI Label app serving the monai_masksup bundles: auto-segmentation, and training on the labels users save.

Start it with ``monailabel start_server --app apps/monailabel --studies <folder> --conf models all``; see README.md.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import monailabel
from fastapi import HTTPException
from monailabel.config import settings
from monailabel.datastore.local import LocalDatastore
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.exception import MONAILabelError, MONAILabelException
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.scoring import ScoringMethod
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.tasks.activelearning.epistemic import Epistemic

from lib.bundle_catalog import default_bundles_dir, find_bundles, infer_task_names, split_names
from lib.infers import MaskSupBundleInferTask
from lib.scoring import TeacherStudentDisagreementScoring, disagreement_key
from lib.study_files import datastore_extensions
from lib.trainers import MaskSupBundleTrainTask

logger = logging.getLogger(__name__)


class MaskSupApp(MONAILabelApp):
    """
    Every bundle of a bundles folder (``bundles/masksup_glas``, ``bundles/masksup_kvasir``, any other bundle
    folder with ``configs/metadata.json``) as an infer task and a train task named after the bundle; for a bundle
    with ``configs/train_semisup.json``, also the scoring method and the active-learning strategy
    ``disagreement_<bundle>`` (teacher-student disagreement). Nothing is downloaded: bundles come from a local
    folder. The local datastore lists 2D images (PNG, JPEG, TIFF, BMP) and volumes (NIfTI, MetaImage, NRRD)
    besides ``MONAI_LABEL_DATASTORE_FILE_EXT``.

    ``--conf`` options:

    - ``models``: ``all`` (default) or bundle names, comma-separated;
    - ``bundles``: the folder of bundle folders (default: ``$MONAI_MASKSUP_BUNDLES``, else the project's
      ``bundles/``); each served bundle needs ``models/model.pt`` to infer;
    - ``configs``: config files merged over each bundle's ``inference.json`` and ``train.json``, comma-separated
      (``demo.json`` for a model trained with the bundles' small demo network);
    - ``preload``: load the networks when the server starts (MONAI Label's option).
    """

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        bundles_dir = conf.get("bundles") or os.environ.get("MONAI_MASKSUP_BUNDLES") or default_bundles_dir(app_dir)
        self.bundles = find_bundles(bundles_dir, conf.get("models", "all"), split_names(conf.get("configs")))
        logger.info(f"monai_masksup bundles from {bundles_dir}: {', '.join(self.bundles)}")
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="monai_masksup",
            description=f"monai_masksup bundles: {', '.join(self.bundles)}",
            version=monailabel.__version__,
        )

    def init_infers(self) -> dict[str, InferTask]:
        infers: dict[str, InferTask] = {}
        for name, bundle in self.bundles.items():
            tasks = {
                task_name: MaskSupBundleInferTask(bundle, self.conf, input_kind=kind)
                for task_name, kind in infer_task_names(name, bundle.inference_config()).items()
            }
            valid = {task_name: task for task_name, task in tasks.items() if task.is_valid()}
            if valid:
                infers.update(valid)
            else:
                logger.warning(
                    f"model {name} is not served for inference: {bundle.path / 'models' / 'model.pt'} does not "
                    "exist (train the bundle, or run a training from this server first)"
                )
        return infers

    def init_trainers(self) -> dict[str, TrainTask]:
        trainers: dict[str, TrainTask] = {}
        for name, bundle in self.bundles.items():
            if (bundle.path / "configs" / "train.json").is_file():
                trainers[name] = MaskSupBundleTrainTask(bundle, self.conf)
            else:
                logger.warning(f"model {name} is served for inference only: {bundle.path}/configs has no train.json")
        return trainers

    def init_scoring_methods(self) -> dict[str, ScoringMethod]:
        return {
            disagreement_key(name): TeacherStudentDisagreementScoring(bundle)
            for name, bundle in self.bundles.items()
            if bundle.has_semisup_config
        }

    def init_strategies(self) -> dict[str, Strategy]:
        strategies = super().init_strategies()
        # MONAI Label's Epistemic strategy picks the unlabelled study with the highest score under its key
        for name, bundle in self.bundles.items():
            if bundle.has_semisup_config:
                strategies[disagreement_key(name)] = Epistemic(
                    key=disagreement_key(name),
                    desc=f"The unlabelled study the mean teacher and the student of {name} disagree on most",
                )
        return strategies

    def init_datastore(self) -> Datastore:
        if self.studies.startswith(("http://", "https://")):
            return super().init_datastore()
        return LocalDatastore(
            self.studies,
            extensions=datastore_extensions(settings.MONAI_LABEL_DATASTORE_FILE_EXT),
            auto_reload=settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD,
            read_only=settings.MONAI_LABEL_DATASTORE_READ_ONLY,
        )

    def scoring(self, request: dict[str, Any], datastore: Any = None) -> dict[str, Any]:
        """
        MONAI Label's ``scoring``, with the reason of a failure (no teacher weights yet) in the HTTP answer of a
        ``run_sync`` request: status 500, as for :meth:`infer`, with ``{"detail": message}``.

        Raises:
            HTTPException: status 500, with the message naming the method and the model.
        """
        try:
            return super().scoring(request, datastore)
        except MONAILabelException as error:
            raise HTTPException(status_code=500, detail=error.msg) from error

    def infer(self, request: dict[str, Any], datastore: Any = None) -> dict[str, Any]:
        """
        MONAI Label's ``infer``, with errors that name the model or the image in the HTTP answer.

        MONAI Label 0.8.5 answers an unknown model, an unknown image id or an unreadable image with HTTP 500 and
        the body "Internal Server Error" (the message only reaches the server's log). The status stays 500, as
        clients expect of MONAI Label; the body becomes ``{"detail": message}``.

        Raises:
            HTTPException: status 500, with the message naming the model or the image.
        """
        try:
            return self._checked_infer(request, datastore)
        except MONAILabelException as error:
            raise HTTPException(status_code=500, detail=error.msg) from error

    def _checked_infer(self, request: dict[str, Any], datastore: Any) -> dict[str, Any]:
        model = request.get("model")
        if model and model not in self._infers:
            served = ", ".join(sorted(self._infers)) or "none"
            raise MONAILabelException(
                MONAILabelError.INVALID_INPUT,
                f"there is no model '{model}' to infer with; served models: {served}",
            )
        image = request.get("image")
        if isinstance(image, str) and not os.path.exists(image):
            datastore = datastore if datastore else self.datastore()
            if not datastore.get_image_uri(image):
                raise MONAILabelException(
                    MONAILabelError.INVALID_INPUT,
                    f"there is no image '{image}' in the datastore {self.studies} (model '{model}')",
                )
        return super().infer(request, datastore)
