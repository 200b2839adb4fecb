"""Validation of the 2D / 3D channel-first shapes every masking transform accepts."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence

from monai.config.type_definitions import NdarrayOrTensor

__all__ = ["as_spatial_size", "check_channel_first_image", "shared_spatial_size"]


def as_spatial_size(spatial_size: Sequence[int], name: str = "spatial_size") -> tuple[int, ...]:
    """
    Validate a 2D ``(H, W)`` or 3D ``(H, W, D)`` spatial shape.

    Args:
        spatial_size: the shape to check.
        name: what to call it in the message (an argument name or a description).

    Returns:
        the shape as a tuple of ints.

    Raises:
        ValueError: when the shape is not 2D or 3D, or a side is smaller than 1.
    """
    size = tuple(int(s) for s in spatial_size)
    if len(size) not in (2, 3):
        raise ValueError(f"{name} must have 2 or 3 dimensions, got {tuple(spatial_size)!r}.")
    if any(s < 1 for s in size):
        raise ValueError(f"{name} must be positive, got {tuple(spatial_size)!r}.")
    return size


def check_channel_first_image(img: NdarrayOrTensor, name: str = "img") -> None:
    """
    Raise a ValueError unless ``img`` is channel-first 2D ``(C, H, W)`` or 3D ``(C, H, W, D)``.

    Args:
        img: the image to check.
        name: what to call it in the message (a transform argument or a dictionary key).
    """
    if len(img.shape) not in (3, 4):
        raise ValueError(
            f"{name} must be channel-first (C, H, W) or (C, H, W, D), got shape {tuple(img.shape)}."
        )


def shared_spatial_size(
    data: Mapping[Hashable, NdarrayOrTensor], keys: Iterable[Hashable], owner: str
) -> tuple[int, ...]:
    """
    The spatial shape that the images under ``keys`` share, for a dictionary transform that makes one mask for
    all of them.

    Args:
        data: the data dictionary.
        keys: the keys present in ``data`` to check, at least one; the first one sets the shape.
        owner: the transform's name, for the message.

    Returns:
        the spatial shape ``(H, W)`` or ``(H, W, D)``.

    Raises:
        ValueError: when an image is not channel-first 2D / 3D, has an empty side, or the shapes differ.
    """
    keys = list(keys)
    first = data[keys[0]]
    check_channel_first_image(first, name=f"data[{keys[0]!r}]")
    spatial = as_spatial_size(first.shape[1:], f"spatial size of data[{keys[0]!r}]")
    for key in keys[1:]:
        check_channel_first_image(data[key], name=f"data[{key!r}]")
        if tuple(data[key].shape[1:]) != spatial:
            raise ValueError(
                f"{owner}: key {key!r} has spatial size {tuple(data[key].shape[1:])}, "
                f"but {keys[0]!r} has {spatial}; one mask needs one size."
            )
    return spatial
