"""Marking the A-scan columns of an OCT label that the grader did not annotate, so that losses ignore them."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from .errors import DataFileError, source_name

__all__ = ["DEFAULT_IGNORE_VALUE", "IgnoreUnannotatedColumns", "IgnoreUnannotatedColumnsd"]

#: label value of ignored pixels: above every class index, and the value ``ignore_index`` options of the losses take.
DEFAULT_IGNORE_VALUE = 255


class IgnoreUnannotatedColumns(Transform):
    """Set every label pixel outside the annotated A-scan columns ``[start, stop)`` to ``ignore_value``.

    Manual OCT annotations often cover only part of a B-scan's width (Duke DME: the graders traced a central
    range of columns; the export stores the rest as 0, indistinguishable from background). Training on those
    columns as background would teach the network to miss fluid there; this transform marks them so a loss with
    ``ignore_index=ignore_value`` leaves them out.

    Args:
        ignore_value: the value written outside the annotated columns.
        axis: the spatial axis that indexes A-scan columns. ``0`` for images loaded by MONAI's readers with their
            default ``reverse_indexing=True`` (PNG B-scans become ``(C, width, height)``, RETOUCH volumes
            ``(C, width, depth, n_bscans)``).

    Raises:
        DataFileError: naming the file when the column range is empty or outside the label.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, ignore_value: float = DEFAULT_IGNORE_VALUE, axis: int = 0) -> None:
        self.ignore_value = ignore_value
        self.axis = axis

    def __call__(self, img: NdarrayOrTensor, columns: Sequence[int] | None) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first label ``(C, *spatial)``.
            columns: ``(start, stop)`` of the annotated columns, or ``None`` (everything annotated: unchanged).

        Returns:
            the label with ``ignore_value`` outside the columns, of the input's type.
        """
        if columns is None:
            return img
        data = convert_to_tensor(img, track_meta=False)
        width = data.shape[1 + self.axis]
        start, stop = (int(c) for c in columns)
        if not 0 <= start < stop <= width:
            raise DataFileError(
                f"label '{source_name(img)}': annotated columns [{start}, {stop}) are empty or outside its width "
                f"{width} (spatial axis {self.axis})."
            )
        out = data.clone()
        index = [slice(None)] * out.ndim
        index[1 + self.axis] = slice(0, start)
        out[tuple(index)] = self.ignore_value
        index[1 + self.axis] = slice(stop, None)
        out[tuple(index)] = self.ignore_value
        return convert_to_dst_type(out, dst=img)[0]


class IgnoreUnannotatedColumnsd(MapTransform):
    """Dictionary wrapper of :class:`IgnoreUnannotatedColumns`; the column range comes from the data item.

    The indexers (:func:`~monai_masksup.data.index_duke_oct`) store each B-scan's ``(start, stop)`` under
    ``columns_key``; items without it are left unchanged, so one pipeline serves annotated and fully
    annotated data.

    Args:
        keys: keys of the labels to mark (after binarisation or class mapping, so the ignore value survives).
        columns_key: item key holding ``(start, stop)``.
        ignore_value: the value written outside the annotated columns.
        axis: the spatial axis of A-scan columns (see :class:`IgnoreUnannotatedColumns`).
        allow_missing_keys: do not raise when a label key is absent.
    """

    backend = IgnoreUnannotatedColumns.backend

    def __init__(
        self,
        keys: KeysCollection = "label",
        columns_key: str = "annotated_columns",
        ignore_value: float = DEFAULT_IGNORE_VALUE,
        axis: int = 0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.columns_key = columns_key
        self.ignore = IgnoreUnannotatedColumns(ignore_value=ignore_value, axis=axis)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        columns = d.get(self.columns_key)
        for key in self.key_iterator(d):
            d[key] = self.ignore(d[key], columns)
        return d
