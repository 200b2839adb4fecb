"""
MaskContrast clustering evaluation on the real GlaS images against the official benign / malignant grade.

Each image of ``glas_images_unlabelled/`` (27 H&E tiles with the official ``Grade.csv``; no gland labels) is
resized, embedded by a network, reduced to one prototype over its salient mask
(:func:`monai_masksup.metrics.saliency_prototypes`), and the prototypes are clustered into two clusters
(PCA whitening + K-means) and matched to the grades (:func:`monai_masksup.metrics.evaluate_prototype_clustering`).
mIoU and accuracy count images; they are given as mean ± std over K-means seeds, beside the share of the
larger grade (what predicting one grade for every image scores as accuracy).

Embedding networks (any ``nn.Module`` mapping ``(B, 3, H, W)`` to ``(B, D, H, W)`` can be passed to
:func:`evaluate_glas_clustering`):

- ``basicunet``: a randomly initialised MONAI ``BasicUNet`` trunk with 32 output channels (seed 0): the
  untrained baseline a pre-trained MaskContrast trunk has to beat;
- ``image-statistics``: every pixel embedded as ``(r, g, b, r², g², b²)``, so a prototype is the normalised
  first and second colour moments of the salient region: a baseline with no learning at all.

Salient masks (the mask proposals of a trained model are not available here yet): ``all`` (the whole image,
the prototype is a global average) or ``dark`` (pixels darker than the image's mean grey level: in H&E the
stained tissue, leaving out white lumen and background; a stand-in for an unsupervised proposal rule).

Usage::

    python benchmarks/maskcontrast_eval_glas.py                       # all 27 images, 256 x 256, 5 seeds
    python benchmarks/maskcontrast_eval_glas.py --limit 4 --size 64   # quick form
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn
from monai.networks.nets import BasicUNet
from monai.transforms import Compose, LoadImage, Resize, ScaleIntensityRange

from monai_masksup.data import read_glas_grades
from monai_masksup.metrics import evaluate_prototype_clustering, saliency_prototypes

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glas_images_unlabelled"
GRADES = ("benign", "malignant")


class ImageStatistics(nn.Module):
    """Pixel embedding ``(r, g, b, r², g², b²)``: prototypes are colour moments of the salient region."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x * x], dim=1)


def random_basicunet(seed: int = 0, embedding_dim: int = 32) -> nn.Module:
    """A randomly initialised MONAI ``BasicUNet`` (2D, RGB in, ``embedding_dim`` channels out), in eval mode."""
    torch.manual_seed(seed)
    return BasicUNet(spatial_dims=2, in_channels=3, out_channels=embedding_dim).eval()


def all_pixels(images: torch.Tensor) -> torch.Tensor:
    """Salient mask of every pixel: the prototype is the image's mean embedding."""
    return torch.ones_like(images[:, :1])


def dark_pixels(images: torch.Tensor) -> torch.Tensor:
    """Salient mask of the pixels darker than their image's mean grey level (stained tissue in H&E)."""
    grey = images.mean(dim=1, keepdim=True)
    return (grey < grey.mean(dim=(2, 3), keepdim=True)).float()


SALIENCY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"all": all_pixels, "dark": dark_pixels}
NETWORKS: dict[str, Callable[[], nn.Module]] = {"basicunet": random_basicunet, "image-statistics": ImageStatistics}


def select_images(data_dir: Path, limit: int | None = None) -> tuple[list[Path], torch.Tensor]:
    """
    The GlaS images of ``data_dir`` and their grades (0 benign, 1 malignant), in name order; with ``limit``,
    the first ``limit`` taken alternately from each grade so that a quick run sees both.

    Raises:
        FileNotFoundError: when ``data_dir`` holds no ``.bmp`` image.
        ValueError: when an image has no row in ``Grade.csv`` or an unknown grade.
    """
    paths = sorted(data_dir.glob("*.bmp"))
    if not paths:
        raise FileNotFoundError(f"no GlaS .bmp images in '{data_dir}'.")
    grades = read_glas_grades(data_dir)
    by_grade: dict[int, list[Path]] = {0: [], 1: []}
    for path in paths:
        grade = grades.get(path.stem, {}).get("grade", "").lower()
        if grade not in GRADES:
            raise ValueError(f"'{path}': no benign / malignant grade in '{data_dir / 'Grade.csv'}' (got '{grade}').")
        by_grade[GRADES.index(grade)].append(path)
    if limit is not None:
        chosen = []
        for i in range(max(len(v) for v in by_grade.values())):
            chosen += [(by_grade[g][i], g) for g in (0, 1) if i < len(by_grade[g])]
        chosen = sorted(chosen[:limit])
    else:
        chosen = sorted((p, g) for g, ps in by_grade.items() for p in ps)
    return [p for p, _ in chosen], torch.tensor([g for _, g in chosen])


def load_images(paths: list[Path], size: int) -> torch.Tensor:
    """``(N, 3, size, size)`` images scaled to [0, 1]."""
    load = Compose(
        [
            LoadImage(image_only=True, ensure_channel_first=True),
            ScaleIntensityRange(0, 255, 0, 1),
            Resize((size, size), mode="area"),
        ]
    )
    return torch.stack([torch.as_tensor(load(str(p))) for p in paths])


@torch.no_grad()
def embed_prototypes(
    network: nn.Module, images: torch.Tensor, saliency: Callable[[torch.Tensor], torch.Tensor], batch_size: int = 4
) -> torch.Tensor:
    """``(N, D)`` salient prototypes of ``images`` under ``network``."""
    network.eval()
    prototypes = []
    for batch in images.split(batch_size):
        prototypes.append(saliency_prototypes(network(batch), saliency(batch)))
    return torch.cat(prototypes)


def evaluate_glas_clustering(
    network: nn.Module,
    images: torch.Tensor,
    grades: torch.Tensor,
    saliency: Callable[[torch.Tensor], torch.Tensor] = all_pixels,
    seeds: int = 5,
    n_components: int | None = 32,
    whiten: bool = True,
) -> dict[str, float]:
    """
    Two-cluster evaluation of ``network``'s prototypes against the grades, repeated over K-means seeds 0..seeds-1.

    Returns:
        ``{"miou_mean", "miou_std", "accuracy_mean", "accuracy_std"}``.
    """
    prototypes = embed_prototypes(network, images, saliency)
    mious, accuracies = [], []
    for seed in range(seeds):
        result = evaluate_prototype_clustering(
            prototypes, grades, n_classes=2, n_components=n_components, whiten=whiten, seed=seed
        )
        mious.append(result.miou)
        accuracies.append(result.accuracy)
    spread = statistics.pstdev if seeds > 1 else (lambda values: 0.0)
    return {
        "miou_mean": statistics.fmean(mious),
        "miou_std": spread(mious),
        "accuracy_mean": statistics.fmean(accuracies),
        "accuracy_std": spread(accuracies),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="folder of GlaS .bmp + Grade.csv")
    parser.add_argument("--limit", type=int, default=None, help="use this many images, alternating grades")
    parser.add_argument("--size", type=int, default=256, help="images are resized to size x size")
    parser.add_argument("--seeds", type=int, default=5, help="K-means seeds (the reference averages 5)")
    parser.add_argument("--n-components", type=int, default=32, help="PCA components before K-means")
    parser.add_argument("--no-whiten", action="store_true", help="cluster the raw prototypes")
    parser.add_argument("--networks", nargs="+", choices=sorted(NETWORKS), default=sorted(NETWORKS))
    parser.add_argument("--saliency", nargs="+", choices=sorted(SALIENCY), default=["all", "dark"])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    paths, grades = select_images(args.data_dir, args.limit)
    images = load_images(paths, args.size)
    majority = max(int(grades.sum()), len(grades) - int(grades.sum())) / len(grades)
    print(
        f"GlaS clustering evaluation: {len(paths)} images ({int((grades == 0).sum())} benign, "
        f"{int(grades.sum())} malignant) at {args.size} x {args.size}, 2 clusters, "
        f"PCA {'off' if args.no_whiten else f'whitening to <= {args.n_components} components'}, "
        f"{args.seeds} K-means seed(s); larger-grade share {majority:.3f}"
    )
    print(f"{'network':<18} {'saliency':<9} {'mIoU':>15} {'accuracy':>15}")
    for name in args.networks:
        network = NETWORKS[name]()
        for rule in args.saliency:
            row = evaluate_glas_clustering(
                network, images, grades, SALIENCY[rule], args.seeds, args.n_components, not args.no_whiten
            )
            miou = f"{row['miou_mean']:.3f} ± {row['miou_std']:.3f}"
            accuracy = f"{row['accuracy_mean']:.3f} ± {row['accuracy_std']:.3f}"
            print(f"{name:<18} {rule:<9} {miou:>15} {accuracy:>15}")


if __name__ == "__main__":
    main()
