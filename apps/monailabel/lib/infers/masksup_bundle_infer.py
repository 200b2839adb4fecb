"""MONAI Label's ``BundleInferTask`` for the project's bundles: class-index masks under the bundle's label names."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from monai.bundle import ConfigParser
from monai.transforms import Lambdad

from lib.bundle_catalog import INPUT_KIND_KEY, ServedBundle, served_dimension, served_labels
from lib.torchvision_stand_in import torchvision_utils_stand_in

with torchvision_utils_stand_in():
    from monailabel.interfaces.exception import MONAILabelError, MONAILabelException
    from monailabel.tasks.infer.bundle import BundleInferTask

logger = logging.getLogger(__name__)

__all__ = ["MaskSupBundleInferTask"]


class MaskSupBundleInferTask(BundleInferTask):
    """
    Auto-segmentation with a bundle's own ``inference.json``: its ``network_def``, ``preprocessing``, ``inferer``
    and ``postprocessing`` (less ``SaveImaged``) run as ``python -m monai.bundle run`` would run them, so a mask
    from the server equals the one the bundle writes, with 1 where the bundle writes 255.

    What it changes in MONAI Label's ``BundleInferTask``:

    - the config is ``inference.json`` with the app's extra configs merged over it (``demo.json`` swaps in the
      small network that the model was trained with);
    - the labels are :func:`~lib.bundle_catalog.served_labels` (``{"polyp": 1}``), not the output's
      ``channel_def`` numbered from 0 (with the config's ``num_classes``: a Duke DME model of the OCT bundle
      publishes ``{"fluid": 1}``);
    - the mask loses its channel axis and is written as uint8 class indices: a PNG for a 2D bundle whatever the
      image's format (``BundleInferTask`` writes it in the image's own format: a lossy JPEG for a JPEG frame),
      a NIfTI ``.nii.gz`` for a volume bundle (also for a ``.mhd`` volume);
    - the dimension is :func:`~lib.bundle_catalog.served_dimension`: a volume bundle whose 2D network runs
      B-scan by B-scan through a ``SliceInferer`` is served as 3D;
    - an image that cannot be loaded or preprocessed fails with a message that names the model and the file;
    - for a bundle with input kinds (:func:`~lib.bundle_catalog.infer_task_names`: ``mlds_retinal_oct`` reads
      volumes and B-scan images differently), the config's ``input_kind`` is set to this task's kind, so the
      config neither lists an input folder nor generates its demo data.

    Args:
        bundle: the served bundle (its folder, and the extra configs).
        conf: the app's ``--conf`` options (``preload``).
        input_kind: the task's input kind (``"volumes"`` or ``"bscans"``) for a bundle with input kinds, else
            ``None``.
        kwargs: as ``BundleInferTask``.
    """

    def __init__(
        self, bundle: ServedBundle, conf: dict[str, str], input_kind: str | None = None, **kwargs: Any
    ) -> None:
        self.served_bundle = bundle
        self.input_kind = input_kind
        super().__init__(str(bundle.path), conf, **kwargs)
        if self.valid:
            metadata_path = bundle.path / "configs" / "metadata.json"
            has_classes = "num_classes" in self.bundle_config.config
            num_classes = self.bundle_config.get_parsed_content("num_classes") if has_classes else None
            self.labels = served_labels(bundle.name, metadata_path, num_classes)
            self.dimension = served_dimension(json.loads(metadata_path.read_text()), self.bundle_config.config)

    def _load_bundle_config(self, path: str, config: str) -> ConfigParser:
        parser = ConfigParser()
        parser.read_config(self.served_bundle.config_files(os.path.basename(config)))
        parser.config.update({self.const.key_bundle_root(): path})
        if self.input_kind is not None:
            parser.config[INPUT_KIND_KEY] = self.input_kind
        return parser

    def post_transforms(self, data: dict | None = None) -> Sequence[Callable]:
        # MONAI Label's `Restored` (last) keeps the channel axis of a one-channel 2D mask, whose writer would then
        # make a 3D image of depth 1; it drops that of a volume mask itself
        return [*super().post_transforms(data), Lambdad(keys=self.key_pred, func=self._without_channel)]

    def _without_channel(self, mask: Any) -> Any:
        return mask[0] if mask.ndim == self.dimension + 1 and mask.shape[0] == 1 else mask

    def writer(self, data: dict[str, Any], extension: str | None = None, dtype: str | None = None) -> tuple[Any, Any]:
        return super().writer(data, extension=".png" if self.dimension == 2 else ".nii.gz", dtype="uint8")

    def run_pre_transforms(self, data: dict[str, Any], transforms: Sequence[Callable]) -> dict[str, Any]:
        try:
            return super().run_pre_transforms(data, transforms)
        except Exception as error:
            image = data.get("image_path") or data.get("image")
            # MONAI's "no suitable reader" message goes on with every reader's traceback: the log keeps them,
            # the answer gets the first line
            logger.exception(f"model '{self.served_bundle.name}': loading and preprocessing {image} failed")
            summary = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise MONAILabelException(
                MONAILabelError.INFERENCE_ERROR,
                f"model '{self.served_bundle.name}' could not load and preprocess image {image}: {summary}",
            ) from error
