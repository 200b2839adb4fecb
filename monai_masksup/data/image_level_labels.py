"""Image-level labels (which classes a B-scan shows) derived from its pixel label."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_tensor

from .annotated_columns import DEFAULT_IGNORE_VALUE
from .errors import DataFileError, source_name

__all__ = ["ImageLevelLabels", "ImageLevelLabelsd"]


class ImageLevelLabels(Transform):
    """The multi-hot vector of the classes present in a label: ``out[c] = 1`` if some pixel has class ``c``.

    This is the weak annotation of "Every Annotation Counts" (Reiß et al., CVPR 2021): for a share of the
    B-scans only the fluid types present are known. Ignored pixels (``ignore_value``, e.g. unannotated
    columns) do not count.

    Args:
        num_classes: number of classes, background included (4 for RETOUCH, 2 for Duke).
        ignore_value: label value that is not a class, or ``None``.

    Raises:
        DataFileError: naming the file when the label holds a value that is neither a class nor ignored.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, num_classes: int, ignore_value: float | None = DEFAULT_IGNORE_VALUE) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2 (background and one class), got {num_classes}.")
        self.num_classes = num_classes
        self.ignore_value = ignore_value

    def __call__(self, img: NdarrayOrTensor) -> torch.Tensor:
        """
        Args:
            img: label of class indices, any shape (e.g. ``(1, *spatial)``).

        Returns:
            ``float32`` tensor ``(num_classes,)`` in {0, 1}.
        """
        values = torch.unique(convert_to_tensor(img, track_meta=False))
        if self.ignore_value is not None:
            values = values[values != self.ignore_value]
        bad = values[(values < 0) | (values >= self.num_classes) | (values != values.round())]
        if bad.numel():
            raise DataFileError(
                f"label '{source_name(img)}' holds {bad.tolist()[:8]}, not class indices 0..{self.num_classes - 1}"
                + ("" if self.ignore_value is None else f" or the ignore value {self.ignore_value:g}")
                + "."
            )
        out = torch.zeros(self.num_classes, dtype=torch.float32)
        out[values.long().cpu()] = 1.0
        return out


class ImageLevelLabelsd(MapTransform):
    """Dictionary wrapper of :class:`ImageLevelLabels`: writes the vector under ``output_key``.

    Args:
        keys: the label key (one).
        num_classes: number of classes, background included.
        output_key: item key of the multi-hot vector.
        ignore_value: label value that is not a class, or ``None``.
        allow_missing_keys: do not raise when the label is absent.
    """

    backend = ImageLevelLabels.backend

    def __init__(
        self,
        keys: KeysCollection = "label",
        num_classes: int = 4,
        output_key: str = "image_label",
        ignore_value: float | None = DEFAULT_IGNORE_VALUE,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_key = output_key
        self.derive = ImageLevelLabels(num_classes=num_classes, ignore_value=ignore_value)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.output_key] = self.derive(d[key])
        return d
