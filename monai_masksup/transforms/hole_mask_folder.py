"""Hole masks drawn from a folder of mask images, such as the NVIDIA irregular mask data set."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor, PathLike
from monai.transforms import MapTransform, Randomizable, RandomizableTransform
from PIL import Image, UnidentifiedImageError

from .hole_mask import apply_hole_mask, masked_keys_for
from .spatial_size import check_channel_first_image

__all__ = ["HoleMaskFolder", "LoadHoleMaskd"]

MASK_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


class HoleMaskFolder(Randomizable):
    """
    Draw augmented hole masks from a folder of mask images, e.g. the NVIDIA irregular mask data set of
    Liu et al., "Image Inpainting for Irregular Holes Using Partial Convolutions", ECCV 2018 (512 x 512 PNGs,
    white = hole; the test set's files are ordered by hole ratio in bins of 2,000, so ``index_range`` picks
    a coverage bin).

    Every draw picks one file uniformly, then applies the augmentation the data set's authors recommend:
    binarise at ``threshold`` x the image maximum, dilate by a random square of ``dilation_range`` pixels
    (in the mask's own resolution), rotate by a random angle, translate, crop a random square share of the
    mask, and resize to the requested size with nearest-neighbour sampling (one affine resampling).

    Args:
        mask_dir: folder of mask images (.png, .jpg, .jpeg, .bmp), read in sorted file-name order.
        index_range: ``(start, stop)`` slice of the sorted files to draw from (e.g. ``(2000, 4000)`` for the
            NVIDIA test set's (0.1, 0.2] bin); ``None`` = all files.
        threshold: pixels at or above ``threshold * max`` are holes.
        invert: the files mark holes in black (0 = hole) instead of white.
        dilation_range: (min, max) side of the square dilation in pixels; ``None`` = no dilation.
        max_rotation: rotation angle drawn in ``[-max_rotation, max_rotation]`` degrees.
        max_translation: shift drawn in ``[-max_translation, max_translation]`` of the side, per axis.
        crop_range: (min, max) side of the cropped square as a share of the mask side (1 = whole mask).
        cache: keep the binarised masks in memory after the first read.

    Raises:
        FileNotFoundError: when ``mask_dir`` does not exist.
        ValueError: when it holds no mask image (in ``index_range``), or an argument is out of range.
    """

    def __init__(
        self,
        mask_dir: PathLike,
        index_range: tuple[int, int] | None = None,
        threshold: float = 0.6,
        invert: bool = False,
        dilation_range: tuple[int, int] | None = (9, 49),
        max_rotation: float = 180.0,
        max_translation: float = 0.1,
        crop_range: tuple[float, float] = (0.5, 1.0),
        cache: bool = False,
    ) -> None:
        self.mask_dir = Path(mask_dir)
        if not self.mask_dir.is_dir():
            raise FileNotFoundError(f"mask folder {self.mask_dir} does not exist or is not a folder.")
        files = sorted(p for p in self.mask_dir.iterdir() if p.is_file() and p.suffix.lower() in MASK_SUFFIXES)
        if not files:
            raise ValueError(f"mask folder {self.mask_dir} holds no mask image ({', '.join(MASK_SUFFIXES)}).")
        if index_range is not None:
            start, stop = (int(i) for i in index_range)
            files = files[start:stop]
            if not files:
                raise ValueError(f"index_range {tuple(index_range)} selects no file of the {self.mask_dir} masks.")
        self.files = files
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}.")
        self.threshold = float(threshold)
        self.invert = invert
        if dilation_range is not None and not 1 <= dilation_range[0] <= dilation_range[1]:
            raise ValueError(f"dilation_range must be (min, max) with 1 <= min <= max, got {dilation_range}.")
        self.dilation_range = dilation_range
        self.max_rotation = float(max_rotation)
        self.max_translation = float(max_translation)
        if not 0.0 < crop_range[0] <= crop_range[1] <= 1.0:
            raise ValueError(f"crop_range must be (min, max) with 0 < min <= max <= 1, got {crop_range}.")
        self.crop_range = (float(crop_range[0]), float(crop_range[1]))
        self.cache = cache
        self._cache: dict[Path, np.ndarray] = {}
        self._params: dict | None = None

    def read_mask(self, path: Path) -> np.ndarray:
        """
        Read and binarise one mask file.

        Returns:
            bool array ``(H, W)``, True = hole.

        Raises:
            ValueError: when the file cannot be read as an image.
        """
        if path in self._cache:
            return self._cache[path]
        try:
            with Image.open(path) as im:
                data = np.asarray(im.convert("L"), dtype=np.float32)
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise ValueError(f"cannot read mask file {path}: {e}") from e
        peak = float(data.max())
        hole = data >= self.threshold * peak if peak > 0 else np.zeros(data.shape, dtype=bool)
        if self.invert:
            hole = ~hole if peak > 0 else np.ones(data.shape, dtype=bool)
        if self.cache:
            self._cache[path] = hole
        return hole

    def randomize(self, data=None) -> None:
        """Draw the file and the augmentation parameters."""
        dil = None
        if self.dilation_range is not None:
            dil = int(self.R.randint(self.dilation_range[0], self.dilation_range[1] + 1))
        self._params = {
            "file": self.files[int(self.R.randint(len(self.files)))],
            "dilation": dil,
            "angle": math.radians(self.R.uniform(-self.max_rotation, self.max_rotation)),
            "shift": self.R.uniform(-self.max_translation, self.max_translation, size=2) * 2.0,
            "scale": self.R.uniform(*self.crop_range),
        }

    def __call__(self, spatial_size: Sequence[int], randomize: bool = True) -> np.ndarray:
        """
        Args:
            spatial_size: output (H, W).
            randomize: draw a new file and augmentation.

        Returns:
            float32 array ``(1, H, W)``, 1 = hole.

        Raises:
            ValueError: for a 3D ``spatial_size`` (only 2D mask folders are supported) or an unreadable file.
        """
        if len(spatial_size) != 2:
            raise ValueError(
                f"HoleMaskFolder draws 2D masks only; got spatial size {tuple(spatial_size)} "
                "(use HoleMaskGenerator for 3D)."
            )
        if randomize or self._params is None:
            self.randomize()
        p = self._params
        hole = torch.from_numpy(self.read_mask(p["file"]).astype(np.float32))[None, None]
        if p["dilation"] is not None and p["dilation"] > 1:
            k = p["dilation"]
            # Separable square dilation; asymmetric padding keeps the size for even sides.
            hole = F.max_pool2d(F.pad(hole, ((k - 1) // 2, k // 2, 0, 0)), (1, k), stride=1)
            hole = F.max_pool2d(F.pad(hole, (0, 0, (k - 1) // 2, k // 2)), (k, 1), stride=1)
        cos, sin, s = math.cos(p["angle"]), math.sin(p["angle"]), p["scale"]
        # Output grid -> mask coordinates in [-1, 1]: keep the output's aspect ratio, crop (scale), rotate, shift.
        ax, ay = spatial_size[1] / max(spatial_size), spatial_size[0] / max(spatial_size)
        theta = torch.tensor(
            [[s * cos * ax, -s * sin * ay, p["shift"][0]], [s * sin * ax, s * cos * ay, p["shift"][1]]],
            dtype=torch.float32,
        )[None]
        grid = F.affine_grid(theta, [1, 1, int(spatial_size[0]), int(spatial_size[1])], align_corners=False)
        out = F.grid_sample(hole, grid, mode="nearest", padding_mode="zeros", align_corners=False)
        return out[0].numpy()


class LoadHoleMaskd(MapTransform, RandomizableTransform):
    """
    Mask images with holes drawn from a mask folder (see :py:class:`HoleMaskFolder`); writes the same keys
    as :py:class:`RandHoleMaskd`: ``d[masked_key]`` (masked copy, original untouched) and ``d[mask_key]``
    ``(1, H, W)``, 1 = hole. 2D channel-first images only.

    Args:
        keys: keys of the images to mask (same spatial shape, same mask).
        mask_dir: folder of mask images.
        masked_key: key (one key) or keys (one per key) of the masked copies.
        mask_key: key of the hole mask; ``None`` does not store it.
        fill_value: value written into the holes.
        prob: probability of masking (otherwise the copy equals the image and the mask is empty).
        allow_missing_keys: do not raise for absent keys.
        folder_kwargs: further :py:class:`HoleMaskFolder` arguments (``index_range``, ``threshold``,
            ``dilation_range``, ``max_rotation``, ``max_translation``, ``crop_range``, ``invert``, ``cache``).

    Raises:
        FileNotFoundError / ValueError: as :py:class:`HoleMaskFolder`; ValueError for an image that is not
            ``(C, H, W)``.
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        mask_dir: PathLike = "",
        masked_key: str | Sequence[str] = "image_masked",
        mask_key: str | None = "hole_mask",
        fill_value: float = 0.0,
        prob: float = 1.0,
        allow_missing_keys: bool = False,
        **folder_kwargs,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.masked_keys = masked_keys_for(self.keys, masked_key)
        self.mask_key = mask_key
        self.fill_value = float(fill_value)
        self.folder = HoleMaskFolder(mask_dir, **folder_kwargs)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> LoadHoleMaskd:
        super().set_random_state(seed, state)
        self.folder.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        self.randomize(None)
        first_key = self.first_key(d)
        if first_key == ():
            return d
        image = d[first_key]
        check_channel_first_image(image, name=f"d[{first_key!r}]")
        if image.ndim != 3:
            raise ValueError(
                f"LoadHoleMaskd masks 2D images (C, H, W) only; d[{first_key!r}] has shape {tuple(image.shape)} "
                "(use RandHoleMaskd for 3D)."
            )
        spatial = tuple(image.shape[1:])
        if self._do_transform:
            hole = torch.from_numpy(self.folder(spatial))
        else:
            hole = torch.zeros((1, *spatial), dtype=torch.float32)
        mask = None
        for key, masked_key in self.key_iterator(d, self.masked_keys):
            check_channel_first_image(d[key], name=f"d[{key!r}]")
            d[masked_key], mask = apply_hole_mask(d[key], hole, self.fill_value)
        if self.mask_key is not None and mask is not None:
            d[self.mask_key] = mask
        return d
