"""Hole masks drawn from a folder of mask images, such as the NVIDIA irregular mask data set."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.config.type_definitions import PathLike
from monai.transforms import Randomizable
from monai.utils import deprecated
from PIL import Image, UnidentifiedImageError

from monai_masksup import __version__
from monai_masksup.keys import PluginKeys

from .hole_mask import RandHoleMaskd
from .spatial_size import as_spatial_size

__all__ = ["HoleMaskFolder", "LoadHoleMaskd"]

MASK_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


class HoleMaskFolder(Randomizable):
    """
    Draw augmented hole masks from a folder of mask images, e.g. the NVIDIA irregular mask data set of
    Liu et al., "Image Inpainting for Irregular Holes Using Partial Convolutions", ECCV 2018 (512 x 512 PNGs,
    white = hole; the test set's files are ordered by hole ratio in bins of 2,000, so ``index_range`` picks
    a coverage bin).

    Every mask picks one file uniformly, then applies the augmentation the data set's authors recommend:
    binarise at ``threshold`` x the image maximum, dilate by a random square of ``dilation_range`` pixels
    (in the mask's own resolution), rotate by a random angle, translate, crop a random square share of the
    mask, and resize to the requested size with nearest-neighbour sampling (one affine resampling).

    It is a :py:class:`MaskGenerator`: ``folder(batch_size, (H, W), device=None, generator=None)`` returns
    ``(B, 1, H, W)`` float32 masks on ``device``, so it works in :py:class:`RandHoleMaskd` and as the
    ``mask_generator`` of :py:class:`monai_masksup.engines.MaskSupTrainer`. Its random numbers come from
    ``generator`` when given, else from a ``torch.Generator`` seeded from ``self.R`` (``set_random_state``).
    The files are read and augmented one mask at a time on the CPU (they may differ in size); only the final
    resampling runs on ``device``.

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

    def draw_params(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """
        Draw the file and the augmentation of ``batch_size`` masks, in a fixed order, from ``generator``.

        Args:
            batch_size: number of masks B.
            generator: the source of every random number (any device).

        Returns:
            CPU tensors: ``file`` (B,) indices into ``self.files``, ``dilation`` (B,) square sides (absent
            without ``dilation_range``), ``angle`` (B,) radians, ``shift`` (B, 2) in grid units, ``scale`` (B,).
        """
        b, gen_device = int(batch_size), generator.device

        def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
            u = torch.rand(shape, generator=generator, device=gen_device, dtype=torch.float64).cpu()
            return lo + (hi - lo) * u

        def randint(lo: int, hi: int) -> torch.Tensor:  # lo .. hi - 1, as numpy
            return torch.randint(lo, hi, (b,), generator=generator, device=gen_device).cpu()

        params = {"file": randint(0, len(self.files))}
        if self.dilation_range is not None:
            params["dilation"] = randint(self.dilation_range[0], self.dilation_range[1] + 1)
        params["angle"] = torch.deg2rad(uniform(-self.max_rotation, self.max_rotation, b))
        # [-1, 1] grid coordinates span two sides' shares
        params["shift"] = uniform(-self.max_translation, self.max_translation, b, 2) * 2.0
        params["scale"] = uniform(*self.crop_range, b)
        return params

    def __call__(
        self,
        batch_size: int,
        spatial_size: Sequence[int],
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """
        Draw ``batch_size`` augmented masks from the folder.

        Args:
            batch_size: number of masks B, at least 1.
            spatial_size: output (H, W).
            device: device of the returned masks (default CPU).
            generator: source of every random number; ``None``: a generator seeded from ``self.R``.

        Returns:
            float32 tensor ``(B, 1, H, W)`` on ``device``, 1 = hole.

        Raises:
            ValueError: for a 3D ``spatial_size`` (only 2D mask folders are supported), ``batch_size < 1`` or an
                unreadable file.
        """
        if len(spatial_size) != 2:
            raise ValueError(
                f"HoleMaskFolder draws 2D masks only; got spatial size {tuple(spatial_size)} "
                "(use HoleMaskGenerator for 3D)."
            )
        spatial = as_spatial_size(spatial_size)
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        if generator is None:
            generator = torch.Generator().manual_seed(int(self.R.randint(0, 2**31 - 1)))
        params = self.draw_params(int(batch_size), generator)
        device = torch.device("cpu") if device is None else torch.device(device)
        masks = [self._augment(params, i, spatial, device) for i in range(int(batch_size))]
        return torch.cat(masks, dim=0)

    def _augment(self, params: dict[str, torch.Tensor], i: int, spatial: tuple[int, ...], device: torch.device):
        """Mask ``i`` of the draws ``params``, ``(1, 1, H, W)`` on ``device``."""
        hole = torch.from_numpy(self.read_mask(self.files[int(params["file"][i])]).astype(np.float32))[None, None]
        k = int(params["dilation"][i]) if "dilation" in params else 1
        if k > 1:
            # Separable square dilation; asymmetric padding keeps the size for even sides.
            hole = F.max_pool2d(F.pad(hole, ((k - 1) // 2, k // 2, 0, 0)), (1, k), stride=1)
            hole = F.max_pool2d(F.pad(hole, (0, 0, (k - 1) // 2, k // 2)), (k, 1), stride=1)
        angle, s = float(params["angle"][i]), float(params["scale"][i])
        cos, sin = math.cos(angle), math.sin(angle)
        shift_x, shift_y = (float(v) for v in params["shift"][i])
        # Output grid -> mask coordinates in [-1, 1]: keep the output's aspect ratio, crop (scale), rotate, shift.
        ax, ay = spatial[1] / max(spatial), spatial[0] / max(spatial)
        theta = torch.tensor(
            [[s * cos * ax, -s * sin * ay, shift_x], [s * sin * ax, s * cos * ay, shift_y]],
            dtype=torch.float32,
            device=device,
        )[None]
        grid = F.affine_grid(theta, [1, 1, spatial[0], spatial[1]], align_corners=False)
        return F.grid_sample(hole.to(device), grid, mode="nearest", padding_mode="zeros", align_corners=False)


@deprecated(
    since="0.1.0",
    version_val=__version__,
    msg_suffix="use RandHoleMaskd(keys, mask_generator=HoleMaskFolder(mask_dir, ...)) instead.",
)
class LoadHoleMaskd(RandHoleMaskd):
    """
    Deprecated alias of ``RandHoleMaskd(keys, mask_generator=HoleMaskFolder(mask_dir, **folder_kwargs))``:
    masks images with holes drawn from a mask folder and writes the keys of :py:class:`RandHoleMaskd`.

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
        masked_key: str | Sequence[str] = PluginKeys.IMAGE_MASKED,
        mask_key: str | None = PluginKeys.HOLE_MASK,
        fill_value: float = 0.0,
        prob: float = 1.0,
        allow_missing_keys: bool = False,
        **folder_kwargs,
    ) -> None:
        super().__init__(
            keys,
            masked_key=masked_key,
            mask_key=mask_key,
            fill_value=fill_value,
            prob=prob,
            mask_generator=HoleMaskFolder(mask_dir, **folder_kwargs),
            allow_missing_keys=allow_missing_keys,
        )
