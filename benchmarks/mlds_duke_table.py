"""Measure multi-label deep supervision on the real Duke DME OCT subset (issue #14 item 7).

U-Net vs MLDS vs Self-Taught vs Mean-Taught (Reiß et al., "Every Annotation Counts", CVPR 2021) through the
package's own components: :func:`~monai_masksup.data.index_duke_oct` and
:func:`~monai_masksup.data.duke_oct_transforms` (loading, fluid = mask value > 0, per-B-scan percentile
normalisation), :func:`~monai_masksup.data.oct_semi_supervised_splits` (subject-wise semi-supervised splits),
:class:`~monai_masksup.data.ImageLevelLabelsd` (image-level labels), :class:`~monai_masksup.networks.HierarchicalUNet`,
:class:`~monai_masksup.engines.MultiLabelDeepSupervisionTrainer`
(modes ``"unet"``, ``"supervised"`` = MLDS, ``"self_taught"``, ``"mean_taught"`` with an attached
:class:`~monai_masksup.networks.EMATeacher`), MONAI's ``ConfusionMatrixMetric`` and
:func:`~monai_masksup.data.summarize_repeated_splits`.

Protocol:

- **Splits by subject, both directions.** The subset has 22 B-scans of two subjects (11 each). The splitter holds
  one subject out as the test set (``test_fraction=0.5``); of the training subject's 11 B-scans ``--n-pixel`` keep
  their masks, ``--image-share`` of the rest get image-level labels (fluid present or not) and the remainder is
  unlabelled. The splitter's seed decides which subject is held out, so the splits used are the first ``--seeds``
  seeded splits (seeds 0, 1, 2, ...) that test on subject 2 and the first ``--seeds`` that test on subject 1.
- **Scans and network**: B-scans downscaled to ``--size`` (default 384 × 248, half the original; MONAI
  ``Resized``, area for the scan, nearest for the mask); training on random ``--crop`` crops (128 × 128), half of
  the labelled crops centred on fluid (MONAI ``RandCropByPosNegLabeld``, pos 1 : neg 1; fluid covers under 1 % of
  subject 2's scans, so uniform crops rarely hold any), uniform crops of the unlabelled scans. A reduced-width
  ``HierarchicalUNet`` (``--features``, default 8-16-32-64-64, heads 8 wide).
- **Same budget for every method**: the same network initialisation per split, ``--steps`` Adam steps, labelled
  batch ``--batch-size`` drawn with replacement from the pixel-labelled scans, random horizontal flips. The
  semi-supervised modes add an unlabelled batch of the same size per step from the image-labelled + unlabelled
  scans (image-labelled scans restrict the pseudo-labels, the others carry a row of ones, which restricts
  nothing). Every run starts from scratch (no supervised warm-up before the pseudo-labels). Mean-Taught: EMA
  teacher (α ``--ema-alpha``, train mode), teacher input flipped horizontally with probability 0.5 and mapped back,
  mean-teacher term ``ConsistencyLoss("var")`` with weight 1; every loss weight 1.
- **Evaluation** on the held-out subject's 11 B-scans at their original 768 × 496: the network sees the whole
  downscaled scan, its logits are resized back (bilinear) and the argmax is compared with the original mask.
  Fluid IoU and mIoU (mean of background and fluid IoU) are pooled over the test scans (MONAI
  ``ConfusionMatrixMetric("threat score")`` on summed confusion matrices), so scans without fluid count through
  their false positives. The Mean-Taught teacher is evaluated too.
- **Schedule** fixed before measuring (Adam, ``--lr``, ``--steps``), sized by wall time and by training-side
  checks only (the fluid IoU on the run's own pixel-labelled scans, reported as ``train_pixel``); nothing was
  tuned on test-subject results. Every column counts as annotated (``index_duke_oct``'s default).

Examples::

    python benchmarks/mlds_duke_table.py --quick --out /tmp/mlds_quick         # seconds, the test's run
    python benchmarks/mlds_duke_table.py --out /tmp/mlds_duke                  # the measured table
"""

from __future__ import annotations

import argparse
import warnings
import json
import statistics
import sys
import time
from pathlib import Path

import torch

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [] if str(Path(__file__).parent) in sys.path else [str(Path(__file__).parent)]
from bench_train_step import hardware  # noqa: E402

#: table rows: (name, trainer mode, evaluated network)
METHODS = (
    ("U-Net", "unet", "student"),
    ("MLDS", "supervised", "student"),
    ("Self-Taught", "self_taught", "student"),
    ("Mean-Taught", "mean_taught", "student"),
    ("Mean-Taught (EMA teacher)", "mean_taught", "teacher"),
)
MODES = ("unet", "supervised", "self_taught", "mean_taught")
NUM_CLASSES = 2
#: ``(columns, rows)`` of the downscaled B-scans (MONAI's channel-first PNG order: width first)
DEFAULT_SIZE = (384, 248)
#: ``(columns, rows)`` of the random training crops of the downscaled B-scans
DEFAULT_CROP = (128, 128)
QUICK = {
    "steps": 2, "seeds": 1, "size": (64, 48), "crop": (32, 32), "features": (4, 8, 8, 16, 16), "head_channels": 4
}


def load_scans(data_dir: Path, size: tuple[int, int]) -> list[dict]:
    """Every Duke B-scan, loaded once: downscaled ``image`` / ``label`` for training, ``label_full`` for testing,
    and the image-level labels under ``PluginKeys.IMAGE_LABELS``."""
    from monai.transforms import Compose, CopyItemsd, Resized

    from monai_masksup.data import ImageLevelLabelsd, duke_oct_transforms, index_duke_oct
    from monai_masksup.keys import PluginKeys

    items = index_duke_oct(data_dir)
    transform = Compose(
        [
            *duke_oct_transforms(),
            ImageLevelLabelsd(keys="label", num_classes=NUM_CLASSES, output_key=PluginKeys.IMAGE_LABELS),
            CopyItemsd(keys="label", names="label_full"),
            # area averaging for the scan, nearest for the mask (its values are class indices)
            Resized(keys=["image", "label"], spatial_size=size, mode=("area", "nearest")),
        ]
    )
    scans = []
    for item in items:
        d = transform(dict(item))
        scans.append(
            {
                "name": Path(item["image"]).stem,
                "subject": item["subject"],
                "image": d["image"].as_tensor().float(),
                "label": d["label"].as_tensor().float(),
                "label_full": d["label_full"].as_tensor().float(),
                PluginKeys.IMAGE_LABELS: d[PluginKeys.IMAGE_LABELS],
            }
        )
    return scans


def subject_splits(scans: list[dict], per_direction: int, n_pixel: int, image_share: float) -> list[dict]:
    """The first ``per_direction`` seeded splits of :func:`oct_semi_supervised_splits` holding out each subject,
    as ``{"seed", "test_subject", "pixel", "image", "unlabelled", "test"}`` (lists of scan names)."""
    from monai_masksup.data import oct_semi_supervised_splits

    subjects = sorted({s["subject"] for s in scans})
    items = [{"name": s["name"], "subject": s["subject"]} for s in scans]
    found: dict[int, list[dict]] = {s: [] for s in subjects}
    seed = 0
    while any(len(v) < per_direction for v in found.values()):
        if seed > 1000:
            raise RuntimeError("no seed among 0..1000 holds out every subject often enough.")
        split = oct_semi_supervised_splits(
            items, n_pixel_labelled=n_pixel, image_label_share=image_share, test_fraction=0.5, n_splits=1, seed=seed
        )[0]
        test_subject = split["test"][0]["subject"]
        if len(found[test_subject]) < per_direction:
            entry = {part: [i["name"] for i in split[part]] for part in ("pixel", "image", "unlabelled", "test")}
            found[test_subject].append({"seed": seed, "test_subject": test_subject, **entry})
        seed += 1
    # subject 2 held out first: training on subject 1, which has more fluid, is the paper's usual direction
    return [split for s in sorted(subjects, reverse=True) for split in found[s]]


def _loader(items: list[dict], keys: list[str], batch_size: int, crop: tuple[int, int] | None, seed: int):
    from monai.data import DataLoader, Dataset
    from monai.transforms import Compose, RandCropByPosNegLabeld, RandFlipd, RandSpatialCropd

    augment = [RandFlipd(keys=keys, prob=0.5, spatial_axis=0)]
    if crop is not None and "label" in keys:
        # fluid covers 0-6 % of a B-scan (under 1 % in subject 2): uniform crops rarely hold any, so half the
        # labelled crops are centred on fluid (MONAI's usual remedy for a rare class)
        augment.insert(0, RandCropByPosNegLabeld(keys=keys, label_key="label", spatial_size=crop, pos=1, neg=1))
    elif crop is not None:
        augment.insert(0, RandSpatialCropd(keys=keys, roi_size=crop, random_size=False))
    augment = Compose(augment)
    augment.set_random_state(seed)
    # with replacement: the pixel-labelled set may be smaller than a batch
    generator = torch.Generator().manual_seed(seed)
    sampler = torch.utils.data.RandomSampler(
        items, replacement=True, num_samples=max(len(items), batch_size), generator=generator
    )
    return DataLoader(Dataset(items, augment), batch_size=batch_size, sampler=sampler, drop_last=True, num_workers=0)


def evaluate(network: torch.nn.Module, test: list[dict]) -> dict[str, float]:
    """Fluid IoU and mIoU pooled over the test scans at their original size (see the module docstring)."""
    import torch.nn.functional as F
    from monai.metrics import ConfusionMatrixMetric
    from monai.networks.utils import one_hot

    from monai_masksup.data.annotated_columns import DEFAULT_IGNORE_VALUE

    metric = ConfusionMatrixMetric(include_background=True, metric_name="threat score", reduction="sum_batch")
    was_training = network.training
    network.eval()
    with torch.no_grad():
        for scan in test:
            truth = scan["label_full"][None]
            logits = network(scan["image"][None])
            logits = F.interpolate(logits, size=truth.shape[2:], mode="bilinear", align_corners=False)
            # ignored (unannotated) pixels leave both one-hot maps empty, so they count in no class
            valid = (truth != DEFAULT_IGNORE_VALUE).float()
            pred = one_hot(logits.argmax(1, keepdim=True), NUM_CLASSES) * valid
            metric(y_pred=pred, y=one_hot(truth * valid, NUM_CLASSES) * valid)
    network.train(was_training)
    iou = metric.aggregate()[0]
    return {"fluid_iou": float(iou[1]), "miou": float(iou.mean()), "background_iou": float(iou[0])}


def run(mode: str, split: dict, scans: dict[str, dict], args: argparse.Namespace) -> dict:
    """Train one mode on one split for ``args.steps`` steps; return its test metrics and wall time."""
    from ignite.engine import Events
    from monai.utils import set_determinism

    from monai_masksup.data.annotated_columns import DEFAULT_IGNORE_VALUE
    from monai_masksup.engines import FlipAffinePerturbation, MultiLabelDeepSupervisionTrainer
    from monai_masksup.keys import PluginKeys
    from monai_masksup.networks import EMATeacher, HierarchicalUNet

    seed = split["seed"]
    set_determinism(seed=seed)
    net = HierarchicalUNet(
        in_channels=1, out_channels=NUM_CLASSES, features=args.features, head_channels=args.head_channels
    )
    labelled = [{"image": scans[n]["image"], "label": scans[n]["label"]} for n in split["pixel"]]
    key = PluginKeys.IMAGE_LABELS
    weak = [{"image": scans[n]["image"], key: scans[n][key]} for n in split["image"]]
    # an unlabelled scan's row of ones restricts nothing
    weak += [{"image": scans[n]["image"], key: torch.ones(NUM_CLASSES)} for n in split["unlabelled"]]
    kwargs = {}
    teacher = None
    if mode in ("self_taught", "mean_taught"):
        kwargs["unlabelled_data_loader"] = _loader(weak, ["image"], args.batch_size, args.crop, seed + 1)
    if mode == "mean_taught":
        teacher = EMATeacher(net, alpha=args.ema_alpha)
        kwargs.update(teacher=teacher, perturbation=FlipAffinePerturbation(flip_axes=(0,)), perturbation_seed=seed)
    trainer = MultiLabelDeepSupervisionTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=_loader(labelled, ["image", "label"], args.batch_size, args.crop, seed),
        network=net,
        optimizer=torch.optim.Adam(net.parameters(), lr=args.lr),
        mode=mode,
        ignore_index=DEFAULT_IGNORE_VALUE,
        epoch_length=args.steps,
        decollate=False,
        **kwargs,
    )
    if teacher is not None:
        teacher.attach(trainer)
    losses: list[float] = []
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output["loss"].detach()))
    )
    wall = time.perf_counter()
    trainer.run()
    wall = time.perf_counter() - wall
    test = [scans[n] for n in split["test"]]
    result = {
        "mode": mode,
        "seed": seed,
        "test_subject": split["test_subject"],
        "steps": trainer.state.iteration,
        "wall_s": wall,
        "final_train_loss": statistics.fmean(losses[-10:]),
        # training side only (the pixel-labelled scans): the sanity check the schedule was chosen on
        "train_pixel": evaluate(net, [scans[n] for n in split["pixel"]]),
        "student": evaluate(net, test),
    }
    if teacher is not None:
        result["teacher"] = evaluate(teacher.teacher, test)
    return result


def summarise(results: list[dict]) -> list[dict]:
    """Mean ± std (ddof 1) over the splits per table row, with :func:`summarize_repeated_splits`."""
    from monai_masksup.data import summarize_repeated_splits

    rows = []
    for name, mode, who in METHODS:
        runs = [r for r in results if r["mode"] == mode and who in r]
        if not runs:
            continue
        row = {"method": name, "mode": mode, "network": who, "splits": len(runs)}
        for metric in ("fluid_iou", "miou"):
            row[metric] = summarize_repeated_splits([r[who][metric] for r in runs])
            for subject in sorted({r["test_subject"] for r in runs}):
                values = [r[who][metric] for r in runs if r["test_subject"] == subject]
                row[f"{metric}_test_subject_{subject}"] = statistics.fmean(values)
        row["train_fluid_iou"] = statistics.fmean(r["train_pixel"]["fluid_iou"] for r in runs)
        row["wall_s_per_run"] = statistics.fmean(r["wall_s"] for r in runs)
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    """The results table: one row per method, mean ± std over every split and the mean per held-out subject."""
    subjects = sorted({int(k.rsplit("_", 1)[1]) for r in rows for k in r if k.startswith("fluid_iou_test_subject_")})
    per_subject = " | ".join(f"fluid IoU, test subject {s}" for s in subjects)
    lines = [
        f"| method | fluid IoU (mean ± std, {rows[0]['splits']} splits) | mIoU (mean ± std) | {per_subject} "
        "| train-side fluid IoU | s / run |",
        "|---|---|---|" + "---|" * len(subjects) + "---|---|",
    ]
    for r in rows:
        cells = " | ".join(f"{r[f'fluid_iou_test_subject_{s}']:.3f}" for s in subjects)
        lines.append(
            f"| {r['method']} | {r['fluid_iou']['text']} | {r['miou']['text']} | {cells} | {r['train_fluid_iou']:.3f} "
            f"| {r['wall_s_per_run']:.0f} |"
        )
    return "\n".join(lines)


def machine() -> dict:
    """The hardware description of every benchmark (``bench_train_step.hardware``) plus torch's thread count."""
    return {**hardware("cpu"), "torch_threads": torch.get_num_threads()}


def _size(text: str) -> tuple[int, int] | None:
    if text.lower() == "none":
        return None
    parts = text.lower().split("x")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"--size must be COLUMNSxROWS (e.g. 192x128), got {text!r}")
    return int(parts[0]), int(parts[1])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "duke_oct")
    parser.add_argument("--quick", action="store_true", help="2 steps, 1 split per direction, tiny net and scans")
    parser.add_argument("--seeds", type=int, default=3, help="seeded splits per direction (held-out subject)")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps of every run")
    parser.add_argument("--size", type=_size, default=DEFAULT_SIZE, help="COLUMNSxROWS of the downscaled B-scans")
    parser.add_argument("--crop", type=_size, default=DEFAULT_CROP, help="COLUMNSxROWS training crops, or none")
    parser.add_argument("--features", type=int, nargs=5, default=(8, 16, 32, 64, 64))
    parser.add_argument("--head-channels", type=int, default=8)
    parser.add_argument("--n-pixel", type=int, default=3, help="pixel-labelled B-scans of the training subject")
    parser.add_argument("--image-share", type=float, default=0.5, help="share of the rest with image-level labels")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--ema-alpha", type=float, default=0.99)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("mlds_duke_table"), help="writes OUT.json and OUT.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.seeds = QUICK["steps"], QUICK["seeds"]
        args.size, args.crop = QUICK["size"], QUICK["crop"]
        args.features, args.head_channels = QUICK["features"], QUICK["head_channels"]
    if args.size is None:
        parser.error("--size must be COLUMNSxROWS")
    if args.seeds < 1 or args.steps < 1:
        parser.error("--seeds and --steps must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.data_dir.is_dir():
        print(f"mlds_duke_table: {args.data_dir} is absent; pass --data-dir", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    # pixel-labelled scans without fluid give only background-centred crops; MONAI warns on every such crop
    warnings.filterwarnings("ignore", message="Num foregrounds 0")
    sys.path.insert(0, str(PROJECT_ROOT))
    started = time.perf_counter()
    scans = load_scans(args.data_dir, args.size)
    by_name = {s["name"]: s for s in scans}
    splits = subject_splits(scans, args.seeds, args.n_pixel, args.image_share)
    results = []
    for split in splits:
        for mode in args.modes:
            r = run(mode, split, by_name, args)
            results.append(r)
            print(json.dumps(r), flush=True)
    rows = summarise(results)
    wall = time.perf_counter() - started
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    report = {
        "machine": machine(), "settings": settings, "wall_s": wall, "splits": splits, "runs": results, "summary": rows
    }
    table = markdown(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    header = (
        f"Duke DME subset, {len(splits)} subject-wise splits, {args.n_pixel} pixel-labelled B-scans, "
        f"image-share {args.image_share}, {args.steps} steps, scans {args.size[0]}x{args.size[1]}, "
        f"features {tuple(args.features)}, wall {wall:.0f} s on {report['machine']['cpu']} "
        f"({args.threads} torch thread(s), torch {torch.__version__})"
    )
    args.out.with_suffix(".md").write_text(header + "\n\n" + table + "\n")
    print(header)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
