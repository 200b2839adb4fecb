"""MONAI Label scoring: rank the unlabelled studies by how much the mean teacher and its student disagree."""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import torch
from monai.bundle import ConfigParser
from monai.inferers import SimpleInferer

from lib.bundle_catalog import ServedBundle, served_dimension
from lib.disagreement import teacher_student_disagreement
from lib.study_files import split_by_dimension
from lib.teacher_checkpoint import NoTeacherError, find_teacher_student_weights
from lib.torchvision_stand_in import torchvision_utils_stand_in

with torchvision_utils_stand_in():
    from monailabel.interfaces.datastore import Datastore
    from monailabel.interfaces.exception import MONAILabelError, MONAILabelException
    from monailabel.interfaces.tasks.scoring import ScoringMethod
    from monailabel.utils.others.generic import name_to_device

logger = logging.getLogger(__name__)

__all__ = ["TeacherStudentDisagreementScoring", "disagreement_key"]


def disagreement_key(model: str) -> str:
    """The scoring method's name, and the datastore image-info key of its score: ``disagreement_<model>``."""
    return f"disagreement_{model}"


class TeacherStudentDisagreementScoring(ScoringMethod):
    """
    Score every unlabelled study by the disagreement of a semi-supervised run's mean teacher and student
    (:func:`~lib.disagreement.teacher_student_disagreement`: the mean squared difference of their probability
    maps), for active learning: the studies the two disagree on most are the ones a label helps most.

    The weights are the newest interval checkpoint with a teacher (``extra_state["ema_teacher"]``) in the app's
    training folder (``<bundle>/eval/monailabel/checkpoints``), else in the bundle's ``models/`` (a run of the
    bundle's own ``train_semisup.json``). Where there is none, the request fails and says so: a supervised
    model is never scored in the teacher's place. Both networks are the bundle's ``network_def``, in eval mode,
    on the image as the bundle's ``inference.json`` preprocesses it, through its ``inferer``.

    Each score goes into the datastore's image info under :func:`disagreement_key` (with ``<key>_ts``, the
    checkpoint's modification time), where MONAI Label's ``Epistemic`` strategy of the same name picks the
    highest one as the next study to label. An unlabelled study that cannot be read is reported under
    ``failed`` and not scored; studies of the other dimension (volumes for a 2D bundle) are left out.

    Args:
        bundle: the served bundle (its folder, and the extra configs merged over ``inference.json``).
    """

    def __init__(self, bundle: ServedBundle) -> None:
        super().__init__(f"Rank unlabelled studies by mean teacher-student disagreement of {bundle.name}")
        self.served_bundle = bundle
        self.key = disagreement_key(bundle.name)

    def checkpoint_dirs(self) -> list[str]:
        """Where the teacher is looked for, in order: the app's training folder, then the bundle's ``models/``."""
        return [str(self.served_bundle.work_dir / "checkpoints"), str(self.served_bundle.path / "models")]

    def info(self) -> dict[str, Any]:
        return {**super().info(), "model": self.served_bundle.name, "key": self.key}

    def __call__(self, request: dict[str, Any], datastore: Datastore) -> dict[str, Any]:
        name = self.served_bundle.name
        try:
            weights = find_teacher_student_weights(self.checkpoint_dirs())
        except NoTeacherError as error:
            raise MONAILabelException(
                MONAILabelError.INVALID_INPUT,
                f"scoring '{self.key}' of model '{name}' cannot run: {error}; train it semi-supervised first "
                f"(POST /train/{name})",
            ) from error
        parser = ConfigParser()
        parser.read_config(self.served_bundle.config_files("inference.json"))
        parser.config["bundle_root"] = str(self.served_bundle.path)
        metadata = json.loads((self.served_bundle.path / "configs" / "metadata.json").read_text())
        image_key = next(iter(metadata["network_data_format"]["inputs"]))
        device = torch.device(name_to_device(request.get("device")))
        preprocessing = parser.get_parsed_content("preprocessing")
        inferer = parser.get_parsed_content("inferer") if parser.get("inferer") else SimpleInferer()
        student = parser.get_parsed_content("network_def")
        teacher = copy.deepcopy(student)
        student.load_state_dict(weights.student)
        teacher.load_state_dict(weights.teacher)
        student.to(device).eval()
        teacher.to(device).eval()

        uris = {datastore.get_image_uri(image_id): image_id for image_id in datastore.get_unlabeled_images()}
        kept, left_out = split_by_dimension(list(uris), served_dimension(metadata, parser.config))
        stamp = int(weights.path.stat().st_mtime)
        scores: dict[str, float] = {}
        failed: dict[str, str] = {}
        for uri in kept:
            image_id = uris[uri]
            try:
                image = preprocessing({image_key: uri})[image_key].unsqueeze(0).to(device)
                with torch.no_grad():
                    score = teacher_student_disagreement(inferer(image, student), inferer(image, teacher))
            except Exception as error:
                summary = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                failed[image_id] = f"{uri}: {summary}"
                logger.warning(f"{self.key}: not scored: {failed[image_id]}")
                continue
            scores[image_id] = float(score[0])
            datastore.update_image_info(image_id, {self.key: scores[image_id], f"{self.key}_ts": stamp})
        ranking = [{"id": i, "score": s} for i, s in sorted(scores.items(), key=lambda item: item[1], reverse=True)]
        logger.info(f"{self.key}: scored {len(scores)} unlabelled studies with {weights.path} (epoch {weights.epoch})")
        return {
            "model": name,
            "checkpoint": str(weights.path),
            "epoch": weights.epoch,
            "ranking": ranking,
            "failed": failed,
            "left_out": [uris[uri] for uri in left_out],
        }
