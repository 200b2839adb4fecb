"""MaskContrast pre-training → MaskSup fine-tuning, measured on the real polyp subsets on a CPU (issue #15 item 7).

Two arms per seed, the same MaskSup fine-tuning schedule (same steps, optimizer, batches, augmentation):

- ``scratch``: MONAI ``BasicUNet`` trained from its random initialisation with
  :class:`~monai_masksup.engines.MaskSupTrainer` (``MaskSupLoss``, ``HoleMaskGenerator("high")``);
- ``pretrained``: a :class:`~monai_masksup.networks.MaskContrastNet` around the same ``BasicUNet`` is first
  pre-trained with :class:`~monai_masksup.engines.MaskContrastTrainer` (``MaskContrastLoss`` with a
  ``PrototypeQueue``, the momentum key network an ``EMATeacher``), then its trunk is handed to a fresh
  ``BasicUNet`` with :func:`~monai_masksup.networks.load_pretrained_trunk` (heads excluded) and fine-tuned as
  ``scratch``.

The mask proposals of pre-training are the training masks (``MaskProposald(source="label")``, the issue's
"supervised saliency"): pre-training therefore sees the same labels as fine-tuning, only through the contrastive
and saliency losses. The polyp evaluations of the issue are reported for the pre-trained network: the saliency
head's test IoU (``sigmoid > 0.5``), and the linear probe (:func:`~monai_masksup.metrics.train_linear_probe`:
frozen network, a 1×1 head on the embeddings), also on the untrained network of the same seed as a baseline.

Data: the Kvasir bundle's own pipeline (``bundles/masksup_kvasir/configs/train.json`` + ``demo.json``): its
``polyp_split`` with the Medico 2020 Kvasir training list and half of the CVC-ClinicDB frames held out (seed 0);
training = the Medico-train Kvasir images + the other CVC frames, test = the held-out CVC frames + the
Medico-validation Kvasir images. Pre-training, fine-tuning and the probe's training only ever see the training
split; the test split is used for the figures only. Images go through the bundle's ``validate#preprocessing``
at ``--size`` pixels and are held in memory; fine-tuning batches get the bundle's ``train#random_transforms``
(flips, 90° rotations) and pre-training batches the two views of ``pretrain_maskcontrast.json``'s
``train#random_transforms`` (proposal, random crops, flips, rotations, intensity jitter).

Metrics: mean per-image foreground IoU (:func:`~monai_masksup.metrics.compute_foreground_iou`) and Dice (MONAI's
``compute_dice``) over the test images; mean ± std (ddof 1) over seeds. The linear probe also gives the
package's pooled mIoU (one confusion matrix over all test pixels).

Examples::

    python benchmarks/maskcontrast_finetune_polyps.py                         # the default budget, 3 seeds
    python benchmarks/maskcontrast_finetune_polyps.py --quick --out /tmp/q.json   # seconds, for the test
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [] if str(Path(__file__).parent) in sys.path else [str(Path(__file__).parent)]
from bench_train_step import hardware  # noqa: E402

KVASIR_CONFIGS = PROJECT_ROOT / "bundles" / "masksup_kvasir" / "configs"
KEYS = ("image", "label", "key_image", "key_label")
QUICK = {"size": 32, "steps": 2, "pretrain_steps": 2, "probe_epochs": 1, "seeds": [0], "limit": 6}


def bundle_parser(data_dir: Path, size: int, pretrain: bool = False):
    """The Kvasir bundle's ``train.json`` + ``demo.json`` (+ ``pretrain_maskcontrast.json``) on the shared subsets,
    with the benchmark's split: Medico-train Kvasir ids, half of the CVC frames held out (seed 0)."""
    from monai.bundle import ConfigParser

    names = ["train.json", "demo.json"] + (["pretrain_maskcontrast.json"] if pretrain else [])
    parser = ConfigParser()
    parser.read_config([str(KVASIR_CONFIGS / name) for name in names])
    parser.update(
        {
            "kvasir_dir": str(data_dir / "kvasir_seg" / "Kvasir-SEG"),
            "cvc_dir": str(data_dir / "cvc_clinicdb" / "CVC-ClinicDB"),
            "kvasir_train_ids": str(data_dir / "kvasir_seg" / "splits_medico2020" / "train.txt"),
            "cvc_test_fraction": 0.5,
            "seed": 0,
            "image_size": [size, size],
            "bundle_root": tempfile.gettempdir() + "/maskcontrast_finetune_polyps_bundle",
            "device": "$torch.device('cpu')",
        }
    )
    return parser


def load_polyps(data_dir: Path, size: int, limit: int | None = None) -> tuple[list[dict], list[dict]]:
    """``(train, test)`` frames ``{"image": (3, size, size) in [-1, 1], "label": (1, size, size) in {0, 1}}``,
    pre-processed as the Kvasir bundle validates; ``limit`` keeps the first frames of each part (quick runs)."""
    from monai_masksup.data import index_kvasir_seg

    parser = bundle_parser(data_dir, size)
    preprocessing = parser.get_parsed_content("validate#preprocessing")
    train_items = list(parser.get_parsed_content("train_items"))
    kvasir_val = index_kvasir_seg(
        data_dir / "kvasir_seg" / "Kvasir-SEG", ids=data_dir / "kvasir_seg" / "splits_medico2020" / "val.txt"
    )
    test_items = list(parser.get_parsed_content("test_datalist")) + kvasir_val
    if {str(i["image"]) for i in train_items} & {str(i["image"]) for i in test_items}:
        raise RuntimeError("maskcontrast_finetune_polyps: the training and test splits overlap.")
    parts = []
    for items in (train_items, test_items):
        if limit is not None:
            # both sources in a quick run: the first and last items (Kvasir first, CVC last)
            items = items[: (limit + 1) // 2] + items[len(items) - limit // 2 :]
        frames = []
        for item in items:
            d = preprocessing(dict(item))
            frames.append(
                {"image": d["image"].as_tensor().float(), "label": d["label"].as_tensor().float(), "id": item["image"]}
            )
        parts.append(frames)
    return parts[0], parts[1]


def _loader(frames: list[dict], transform, batch_size: int, steps: int, seed: int):
    """``steps`` batches drawn with replacement (a seeded sampler), ``transform`` seeded too."""
    from monai.data import DataLoader, Dataset
    from monai.transforms import Compose, EnsureTyped

    transform.set_random_state(seed)
    # a random transform that does not fire leaves a plain tensor, one that fires a MetaTensor: collate one type
    plain = EnsureTyped(keys=list(KEYS), track_meta=False, allow_missing_keys=True)
    transform = Compose([transform, plain])
    items = [{"image": f["image"], "label": f["label"]} for f in frames]
    sampler = torch.utils.data.RandomSampler(
        items, replacement=True, num_samples=steps * batch_size, generator=torch.Generator().manual_seed(seed)
    )
    return DataLoader(Dataset(items, transform), batch_size=batch_size, sampler=sampler, drop_last=True, num_workers=0)


def basic_unet(features: list[int]) -> torch.nn.Module:
    """The fine-tuned network: MONAI ``BasicUNet``, RGB in, one foreground logit out."""
    from monai.networks.nets import BasicUNet

    return BasicUNet(spatial_dims=2, in_channels=3, out_channels=1, features=features)


def finetune(network, frames, args, seed: int) -> dict:
    """MaskSup fine-tuning for ``args.steps`` steps, the Kvasir bundle's loss, masks, optimizer and augmentation."""
    from monai.transforms import Compose

    from monai_masksup.engines import MaskSupTrainer
    from monai_masksup.losses import MaskSupLoss
    from monai_masksup.transforms import HoleMaskGenerator

    parser = bundle_parser(args.data_dir, args.size)
    transform = Compose(parser.get_parsed_content("train#random_transforms"))
    optimizer = torch.optim.Adam(
        network.parameters(), lr=args.lr, weight_decay=parser["weight_decay"], amsgrad=True
    )
    trainer = MaskSupTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        epoch_length=args.steps,
        train_data_loader=_loader(frames, transform, args.batch_size, args.steps, seed),
        network=network,
        optimizer=optimizer,
        loss_function=MaskSupLoss(weights=parser["loss_weights"]),
        mask_generator=HoleMaskGenerator(parser["masking"]),
        branch_mode=parser["branch_mode"],
        mask_seed=seed,
        decollate=False,
    )
    wall = time.perf_counter()
    trainer.run()
    return {"steps": trainer.state.iteration, "wall_s": time.perf_counter() - wall}


def pretrain(network, frames, args, seed: int) -> dict:
    """MaskContrast pre-training of a ``MaskContrastNet`` for ``args.pretrain_steps`` steps, proposals and views
    from the Kvasir bundle's ``pretrain_maskcontrast.json``."""
    from ignite.engine import Events
    from monai.transforms import Compose

    from monai_masksup.engines import MaskContrastTrainer
    from monai_masksup.losses import MaskContrastLoss, PrototypeQueue
    from monai_masksup.networks import EMATeacher

    parser = bundle_parser(args.data_dir, args.size, pretrain=True)
    transform = Compose(parser.get_parsed_content("train#random_transforms"))
    views = transform.transforms[-1]
    queue = PrototypeQueue(network.embedding_dim, args.queue_size)
    loss = MaskContrastLoss(queue=queue, temperature=parser["temperature"])
    key_network = EMATeacher(network, alpha=args.momentum, update_buffers=False, mode="train")
    optimizer = torch.optim.Adam(
        network.parameters(), lr=args.lr, weight_decay=parser["weight_decay"], amsgrad=True
    )
    loader = _loader(frames, transform, args.batch_size, args.pretrain_steps, seed)
    trainer = MaskContrastTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        epoch_length=args.pretrain_steps,
        train_data_loader=loader,
        network=network,
        optimizer=optimizer,
        loss_function=loss,
        key_network=key_network,
        decollate=False,
    )
    losses: list[float] = []

    def record_loss(engine) -> None:
        losses.append(float(torch.as_tensor(engine.state.output["loss"]).detach()))

    trainer.add_event_handler(Events.ITERATION_COMPLETED, record_loss)
    wall = time.perf_counter()
    trainer.run()
    return {
        "steps": trainer.state.iteration,
        "wall_s": time.perf_counter() - wall,
        "loss_first": losses[0],
        "loss_last": statistics.fmean(losses[-10:]),
        "view_fallbacks": views.fallbacks,
    }


def _batches(frames: list[dict], batch_size: int = 8):
    """``(images, labels)`` stacked in order, ``batch_size`` frames at a time."""
    for start in range(0, len(frames), batch_size):
        chunk = frames[start : start + batch_size]
        yield torch.stack([f["image"] for f in chunk]), torch.stack([f["label"] for f in chunk])


@torch.no_grad()
def evaluate(predict, frames: list[dict]) -> dict[str, float]:
    """Mean per-image foreground IoU and Dice of ``predict(images) -> (B, 1, H, W) binary`` on ``frames``."""
    from monai.metrics import compute_dice

    from monai_masksup.metrics import compute_foreground_iou

    ious, dices = [], []
    for images, labels in _batches(frames):
        pred = predict(images).float()
        ious.append(compute_foreground_iou(pred, labels))
        dices.append(compute_dice(pred, labels, include_background=True, ignore_empty=False))
    return {"iou": float(torch.cat(ious).mean()), "dice": float(torch.cat(dices).mean())}


def segmentation_predictor(network):
    """Binary prediction of a segmentation network in eval mode: ``sigmoid(logit) > 0.5``."""
    network.eval()
    return lambda images: torch.sigmoid(network(images)) > 0.5


def saliency_predictor(network):
    """Binary prediction of a ``MaskContrastNet``'s saliency head in eval mode: ``sigmoid(saliency) > 0.5``."""
    network.eval()
    return lambda images: torch.sigmoid(network(images)[1]) > 0.5


def linear_probe(network, train, test, args) -> dict[str, float]:
    """The package's linear probe on ``network``'s embeddings (trained on ``train``, scored on ``test``): its
    pooled mIoU and foreground IoU, and the per-image foreground IoU / Dice of the probe's argmax."""
    from monai_masksup.metrics import train_linear_probe

    def batches(frames, shuffle):
        order = torch.randperm(len(frames)).tolist() if shuffle else range(len(frames))
        return [
            {"image": i, "label": lab.long()} for i, lab in _batches([frames[k] for k in order], args.batch_size)
        ]

    result = train_linear_probe(
        network,
        embedding_dim=network.embedding_dim,
        num_classes=2,
        train_loader=batches(train, shuffle=True),
        val_loader=batches(test, shuffle=False),
        max_epochs=args.probe_epochs,
        output_key=0,
    )
    probe = result.probe.eval()
    per_image = evaluate(lambda images: (probe(images).argmax(1, keepdim=True) == 1), test)
    return {"miou_pooled": result.miou, "fg_iou_pooled": float(result.class_iou[1]), **per_image}


def run_seed(seed: int, train: list[dict], test: list[dict], args) -> dict:
    """Both arms and the pre-trained network's evaluations for one seed."""
    from monai.utils import set_determinism

    from monai_masksup.networks import MaskContrastNet, load_pretrained_trunk

    result: dict = {"seed": seed}
    started = time.perf_counter()

    def progress(phase: str) -> None:
        print(f"seed {seed}: {phase} done at {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)

    set_determinism(seed=seed)
    scratch = basic_unet(args.features)
    result["scratch"] = {"finetune": finetune(scratch, train, args, seed)}
    result["scratch"]["test"] = evaluate(segmentation_predictor(scratch), test)
    progress("scratch fine-tuning")

    set_determinism(seed=seed)
    mc_net = MaskContrastNet(trunk=basic_unet(args.features), embedding_dim=args.embedding_dim)
    result["probe_untrained"] = linear_probe(mc_net, train, test, args)
    progress("untrained linear probe")
    result["pretraining"] = pretrain(mc_net, train, args, seed)
    progress("pre-training")
    result["saliency_head"] = evaluate(saliency_predictor(mc_net), test)
    result["probe_pretrained"] = linear_probe(mc_net, train, test, args)
    progress("pre-trained linear probe")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "maskcontrast_pretrained.pt"
        torch.save(mc_net.state_dict(), ckpt)
        set_determinism(seed=seed)
        network = load_pretrained_trunk(basic_unet(args.features), ckpt)
    result["pretrained"] = {"finetune": finetune(network, train, args, seed)}
    result["pretrained"]["test"] = evaluate(segmentation_predictor(network), test)
    progress("pre-trained fine-tuning")
    return result


ROWS = (
    ("MaskSup from scratch", ("scratch", "test")),
    ("MaskContrast → MaskSup fine-tuning", ("pretrained", "test")),
    ("saliency head (pre-trained, no fine-tuning)", ("saliency_head",)),
    ("linear probe, pre-trained embeddings", ("probe_pretrained",)),
    ("linear probe, untrained embeddings", ("probe_untrained",)),
)


def _get(run: dict, path: tuple[str, ...]) -> dict:
    for key in path:
        run = run[key]
    return run


def summarise(runs: list[dict]) -> list[dict]:
    """Mean ± std (ddof 1) over seeds of every row's test IoU and Dice."""
    rows = []
    for name, path in ROWS:
        row: dict = {"row": name, "seeds": len(runs)}
        for metric in ("iou", "dice"):
            values = [_get(r, path)[metric] for r in runs]
            row[metric] = statistics.fmean(values)
            row[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        if path[0].startswith("probe"):
            row["miou_pooled"] = statistics.fmean(_get(r, path)["miou_pooled"] for r in runs)
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| network | test IoU (mean ± std) | test Dice (mean ± std) |", "|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['row']} | {r['iou']:.3f} ± {r['iou_std']:.3f} | {r['dice']:.3f} ± {r['dice_std']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "data")
    parser.add_argument("--quick", action="store_true", help=f"a seconds-long smoke run: {QUICK}")
    parser.add_argument("--size", type=int, default=96, help="images are resized to size x size")
    parser.add_argument("--steps", type=int, default=250, help="MaskSup fine-tuning steps (both arms)")
    parser.add_argument("--pretrain-steps", type=int, default=250, help="MaskContrast pre-training steps")
    parser.add_argument("--probe-epochs", type=int, default=20, help="linear probe epochs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--features", type=int, nargs=6, default=[16, 16, 32, 64, 128, 16], help="BasicUNet")
    parser.add_argument("--embedding-dim", type=int, default=32)
    parser.add_argument("--queue-size", type=int, default=128, help="prototype queue, divisible by the batch")
    parser.add_argument("--momentum", type=float, default=0.99, help="key network EMA momentum")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam (amsgrad) learning rate of both phases")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("maskcontrast_finetune_polyps.json"))
    args = parser.parse_args(argv)
    limit = None
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
        limit = args.limit
        args.queue_size = args.batch_size = 2
    if args.queue_size % args.batch_size:
        parser.error(f"--queue-size {args.queue_size} must be divisible by --batch-size {args.batch_size}")
    for sub in ("kvasir_seg", "cvc_clinicdb"):
        if not (args.data_dir / sub).is_dir():
            print(f"maskcontrast_finetune_polyps: {args.data_dir / sub} is absent; pass --data-dir", file=sys.stderr)
            return 2
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(PROJECT_ROOT))
    started = time.perf_counter()
    train, test = load_polyps(args.data_dir, args.size, limit)
    runs = []
    for seed in args.seeds:
        runs.append(run_seed(seed, train, test, args))
        print(json.dumps(runs[-1]), flush=True)
    rows = summarise(runs)
    report = {
        "machine": {**hardware("cpu"), "threads": torch.get_num_threads()},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "train": len(train),
        "test": len(test),
        "wall_s": time.perf_counter() - started,
        "runs": runs,
        "summary": rows,
    }
    args.out.write_text(json.dumps(report, indent=2))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
