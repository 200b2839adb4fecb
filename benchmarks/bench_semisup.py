"""Measure semi-supervised training on the real polyp subsets with 10 % labels (issue #13 item 5).

Three methods, the same number of optimizer steps, the same tiny network, several seeds:

- ``supervised``: ``monai.engines.SupervisedTrainer`` with ``DiceCELoss(sigmoid=True)`` on the labelled images;
- ``cutmix_mt``: :class:`~monai_masksup.engines.SemiSupervisedTrainer`, CutMix mean teacher (two unlabelled
  batches, box masks of area 0.5, teacher α 0.99, ``ConsistencyLoss("var")`` with the reference's confidence
  threshold 0.97, weight 1), the same supervised loss;
- ``cutmix_mt_masksup``: the same with ``MaskSupLoss(seg_loss=DiceCELoss(sigmoid=True))`` and
  ``HoleMaskGenerator("high")`` on the labelled images.

Data: the Kvasir-SEG and CVC-ClinicDB subsets of ``../shared/data`` (64 + 31 frames) through the Kvasir bundle's
own validation pre-processing (``configs/train.json``, ``validate#preprocessing``) at ``--size`` pixels, held in
memory. A fixed seeded test set of ``--n-test`` frames (seed 1234, the same for every run); of the other frames
a seeded ``--labeled-fraction`` keeps its labels per seed (at least one), and the unlabelled pool is every
training frame (the reference's choice). Every batch gets random flips of both axes (``RandFlipd``), for every
method alike.

Network: MONAI ``BasicUNet`` with features ``(8, 8, 16, 32, 64, 8)`` (the bundle demo's), Adam, batch size 4.
Test metrics: mean foreground IoU and Dice over the test frames (sigmoid > 0.5), of the student and, for the mean
teacher, of the teacher. Step cost: the median process CPU time per iteration (data loading included) of each
method, and its ratio to the supervised step.

Examples::

    python benchmarks/bench_semisup.py                                 # the default budget
    python benchmarks/bench_semisup.py --steps 50 --seeds 0 --out /tmp/semisup.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

PROJECT_ROOT = Path(__file__).resolve().parents[1]
METHODS = ("supervised", "cutmix_mt", "cutmix_mt_masksup")


def load_polyps(data_dir: Path, size: int) -> list[dict]:
    """Every Kvasir and CVC frame of the shared subsets as ``{"image": (3, size, size), "label": (1, size, size)}``,
    pre-processed as the Kvasir bundle validates."""
    from monai.bundle import ConfigParser

    bundle = PROJECT_ROOT / "bundles" / "masksup_kvasir" / "configs"
    parser = ConfigParser()
    parser.read_config(str(bundle / "train.json"))
    parser["kvasir_dir"] = str(data_dir / "kvasir_seg")
    parser["cvc_dir"] = str(data_dir / "cvc_clinicdb")
    parser["image_size"] = [size, size]
    parser["bundle_root"] = "/tmp/bench_semisup_bundle"
    preprocessing = parser.get_parsed_content("validate#preprocessing")
    items = list(parser.get_parsed_content("train_items")) + list(parser.get_parsed_content("test_datalist"))
    out = []
    for item in sorted(items, key=lambda d: str(d["image"])):
        d = preprocessing(dict(item))
        out.append({"image": d["image"].as_tensor().float(), "label": d["label"].as_tensor().float()})
    return out


def split(frames: list[dict], n_test: int, labeled_fraction: float, seed: int) -> tuple[list, list, list]:
    """``(labelled, unlabelled pool, test)``: a fixed test set, a per-seed labelled share, every train frame."""
    order = torch.randperm(len(frames), generator=torch.Generator().manual_seed(1234)).tolist()
    test = [frames[i] for i in order[:n_test]]
    train = [frames[i] for i in order[n_test:]]
    n_labeled = max(1, round(labeled_fraction * len(train)))
    chosen = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).tolist()[:n_labeled]
    labeled = [train[i] for i in chosen]
    unlabeled = [{"image": f["image"]} for f in train]
    return labeled, unlabeled, test


def _loader(items: list[dict], keys: list[str], batch_size: int):
    from monai.data import DataLoader, Dataset
    from monai.transforms import Compose, RandFlipd

    flips = Compose([RandFlipd(keys=keys, prob=0.5, spatial_axis=0), RandFlipd(keys=keys, prob=0.5, spatial_axis=1)])
    # a sampler with replacement: the labelled set may be smaller than a batch
    sampler = torch.utils.data.RandomSampler(items, replacement=True, num_samples=max(len(items), batch_size))
    return DataLoader(Dataset(items, flips), batch_size=batch_size, sampler=sampler, drop_last=True, num_workers=0)


def evaluate(network: torch.nn.Module, test: list[dict]) -> dict[str, float]:
    """Mean foreground IoU and Dice over the test frames (sigmoid > 0.5); an empty-vs-empty frame scores 1."""
    was_training = network.training
    network.eval()
    ious, dices = [], []
    with torch.no_grad():
        for frame in test:
            pred = (torch.sigmoid(network(frame["image"][None])) > 0.5).float()[0]
            truth = frame["label"] > 0.5
            p = pred > 0.5
            inter, union = float((p & truth).sum()), float((p | truth).sum())
            total = float(p.sum() + truth.sum())
            ious.append(inter / union if union else 1.0)
            dices.append(2 * inter / total if total else 1.0)
    network.train(was_training)
    return {"iou": statistics.fmean(ious), "dice": statistics.fmean(dices)}


def run(method: str, seed: int, labeled: list, unlabeled: list, test: list, steps: int, batch_size: int, lr: float):
    """Train one method for ``steps`` optimizer steps; return its test metrics and step times."""
    from ignite.engine import Events
    from monai.engines import SupervisedTrainer
    from monai.losses import DiceCELoss
    from monai.networks.nets import BasicUNet
    from monai.utils import set_determinism

    from monai_masksup.engines import SemiSupervisedTrainer
    from monai_masksup.losses import ConsistencyLoss, MaskSupLoss
    from monai_masksup.transforms import HoleMaskGenerator

    set_determinism(seed=seed)
    net = BasicUNet(spatial_dims=2, in_channels=3, out_channels=1, features=(8, 8, 16, 32, 64, 8))
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    common = dict(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=_loader(labeled, ["image", "label"], batch_size),
        network=net,
        optimizer=optimizer,
        epoch_length=steps,
        decollate=False,
    )
    if method == "supervised":
        trainer = SupervisedTrainer(loss_function=DiceCELoss(sigmoid=True), **common)
    else:
        masksup = method == "cutmix_mt_masksup"
        loss = MaskSupLoss(seg_loss=DiceCELoss(sigmoid=True)) if masksup else DiceCELoss(sigmoid=True)
        trainer = SemiSupervisedTrainer(
            loss_function=loss,
            unlabeled_data_loader=_loader(unlabeled, ["image"], batch_size),
            unlabeled_data_loader_b=_loader(unlabeled, ["image"], batch_size),
            perturbation="cutmix",
            consistency_loss=ConsistencyLoss("var", confidence_threshold=0.97),
            masksup_mask_generator=HoleMaskGenerator("high") if masksup else None,
            mask_seed=seed,
            **common,
        )
    times: list[float] = []
    started: list[float] = []
    trainer.add_event_handler(Events.ITERATION_STARTED, lambda e: started.append(time.process_time()))
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: times.append(time.process_time() - started[-1]))
    wall = time.perf_counter()
    trainer.run()
    wall = time.perf_counter() - wall
    result = {"method": method, "seed": seed, "steps": trainer.state.iteration, "wall_s": wall}
    result["step_cpu_ms"] = 1000 * statistics.median(times[1:] if len(times) > 1 else times)
    result["student"] = evaluate(net, test)
    if method != "supervised":
        result["teacher"] = evaluate(trainer.teacher.teacher, test)
    return result


def summarise(results: list[dict]) -> list[dict]:
    """Mean ± std (ddof 1) over seeds per method and evaluated network, and the step-cost ratios."""
    rows = []
    base = statistics.median(r["step_cpu_ms"] for r in results if r["method"] == "supervised")
    for method in METHODS:
        runs = [r for r in results if r["method"] == method]
        if not runs:
            continue
        for who in ("student", "teacher"):
            if who not in runs[0]:
                continue
            row = {"method": method, "network": who, "seeds": len(runs)}
            for metric in ("iou", "dice"):
                values = [r[who][metric] for r in runs]
                row[metric] = statistics.fmean(values)
                row[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
            step = statistics.median(r["step_cpu_ms"] for r in runs)
            row["step_cpu_ms"] = step
            row["x_supervised"] = step / base
            rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| method | evaluated | test IoU (mean ± std) | test Dice (mean ± std) | CPU ms / step | × supervised step |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['network']} | {r['iou']:.3f} ± {r['iou_std']:.3f} | "
            f"{r['dice']:.3f} ± {r['dice_std']:.3f} | {r['step_cpu_ms']:.0f} | {r['x_supervised']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "data")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--labeled-fraction", type=float, default=0.1)
    parser.add_argument("--n-test", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench_semisup.json"))
    args = parser.parse_args(argv)
    if "supervised" not in args.methods:
        parser.error("--methods must include supervised (the step-cost reference)")
    for sub in ("kvasir_seg", "cvc_clinicdb"):
        if not (args.data_dir / sub).is_dir():
            print(f"bench_semisup: {args.data_dir / sub} is absent; pass --data-dir", file=sys.stderr)
            return 2
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(PROJECT_ROOT))
    frames = load_polyps(args.data_dir, args.size)
    results = []
    for seed in args.seeds:
        labeled, unlabeled, test = split(frames, args.n_test, args.labeled_fraction, seed)
        for method in args.methods:
            r = run(method, seed, labeled, unlabeled, test, args.steps, args.batch_size, args.lr)
            results.append(r)
            print(json.dumps(r), flush=True)
    rows = summarise(results)
    report = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "torch": torch.__version__},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "frames": len(frames),
        "labeled": len(labeled),
        "unlabeled": len(unlabeled),
        "test": len(test),
        "runs": results,
        "summary": rows,
    }
    args.out.write_text(json.dumps(report, indent=2))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
