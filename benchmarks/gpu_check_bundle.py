"""Bundle runs and the bundle loader's rate for ``benchmarks/gpu_check.py``.

``run_bundle`` trains one bundle through MONAI's own bundle workflow (``monai.bundle.create_workflow`` with the
bundle's ``train.json``, as ``python -m monai.bundle run`` does) at its configured schedule, and stops it at an
epoch boundary when the next epoch plus the evaluation would not fit in its time limit; then it evaluates the
best checkpoint with ``evaluate.json`` through ``monai.bundle.run``. The ignite handlers it adds only measure
(epoch times, time spent waiting for batches) and stop; they change nothing in the training.

Run as a script it does one job in a fresh process, so that ``gpu_check.py`` can kill it at its deadline::

    python benchmarks/gpu_check_bundle.py --spec '{"bundle": "glas", ...}' --result out.json
    python benchmarks/gpu_check_bundle.py --generate-glas DIR --counts 85 60 20 --image-size 224 336
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

BUNDLES_DIR = Path(__file__).resolve().parents[1] / "bundles"


def _configs(bundle: str, names: list[str]) -> dict:
    configs = BUNDLES_DIR / f"masksup_{bundle}" / "configs"
    return {
        "config_file": [str(configs / name) for name in names],
        "meta_file": str(configs / "metadata.json"),
        "logging_file": str(configs / "logging.conf"),
    }


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_bundle(spec: dict) -> dict:
    """Train and evaluate one bundle within ``spec["time_limit_s"]`` seconds.

    Args:
        spec: ``bundle`` (``"glas"`` or ``"kvasir"``), ``overlays`` (extra config files after ``train.json``,
            e.g. ``["demo.json"]``), ``overrides`` (bundle overrides: data folders, ``bundle_root``,
            ``paper_protocol``...), ``time_limit_s``.

    Returns:
        epochs run and planned, whether the schedule finished, train and evaluation seconds, mean epoch
        seconds, the estimated full-schedule seconds, the share of training time spent waiting for batches,
        training and test set sizes, the test IoU / Dice of ``evaluate.json``.
    """
    import torch
    from ignite.engine import Events
    from monai.bundle import create_workflow, run

    t_start = time.perf_counter()
    deadline = t_start + float(spec["time_limit_s"])
    overlays = list(spec.get("overlays", []))
    overrides = dict(spec.get("overrides", {}))
    workflow = create_workflow(**_configs(spec["bundle"], ["train.json", *overlays]), **overrides)
    parser = workflow.parser
    trainer = parser.get_parsed_content("train#trainer")
    evaluator = parser.get_parsed_content("validate#evaluator")
    out: dict = {
        "bundle": spec["bundle"],
        "epochs_planned": int(trainer.state.max_epochs),
        "n_train": len(parser.get_parsed_content("train_datalist")),
        "n_test": len(parser.get_parsed_content("test_datalist")),
        "setup_s": time.perf_counter() - t_start,
    }
    marks = {"wait": 0.0, "val": 0.0}
    epoch_times: list[float] = []

    @trainer.on(Events.GET_BATCH_STARTED)
    def _batch_asked(engine):
        marks["asked"] = time.perf_counter()

    @trainer.on(Events.GET_BATCH_COMPLETED)
    def _batch_got(engine):
        marks["wait"] += time.perf_counter() - marks["asked"]

    @evaluator.on(Events.STARTED)
    def _val_started(engine):
        marks["val0"] = time.perf_counter()

    @evaluator.on(Events.COMPLETED)
    def _val_done(engine):
        marks["val"] = time.perf_counter() - marks["val0"]

    @trainer.on(Events.EPOCH_STARTED)
    def _epoch_started(engine):
        marks["epoch0"] = time.perf_counter()

    # registered after the bundle's own handlers (validation, checkpoints), so an epoch is timed with them
    @trainer.on(Events.EPOCH_COMPLETED)
    def _stop_when_out_of_time(engine):
        now = time.perf_counter()
        epoch_times.append(now - marks["epoch0"])
        recent = epoch_times[-3:]
        # evaluation = checkpoint load, one pass over the test set and the masked-robustness sweep (six more)
        eval_estimate = 15.0 + 8.0 * marks["val"]
        if engine.state.epoch < engine.state.max_epochs and now + 1.2 * max(recent) + eval_estimate > deadline:
            out["stopped_reason"] = f"time limit ({spec['time_limit_s']:.0f} s) before epoch {engine.state.epoch + 1}"
            engine.terminate()

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t_train = time.perf_counter()
    workflow.run()
    _sync()
    train_s = time.perf_counter() - t_train
    workflow.finalize()
    epochs = len(epoch_times)
    out.update(
        epochs_run=epochs,
        finished_schedule=epochs == out["epochs_planned"],
        train_s=train_s,
        epoch_s_mean=sum(epoch_times) / max(epochs, 1),
        estimated_full_schedule_s=out["setup_s"] + sum(epoch_times) / max(epochs, 1) * out["epochs_planned"],
        iterations=int(trainer.state.iteration),
        train_images_per_s=int(trainer.state.iteration) * parser.get_parsed_content("batch_size") / train_s,
        data_wait_share=marks["wait"] / train_s,
        validation_s=marks["val"],
    )
    if torch.cuda.is_available():
        out["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
    del workflow, trainer, evaluator, parser
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

    t_eval = time.perf_counter()
    try:
        run(**_configs(spec["bundle"], ["train.json", *overlays, "evaluate.json"]), **overrides)
        report = json.loads((Path(overrides["bundle_root"]) / "eval" / "metrics.json").read_text())
        summary = report.get("summary", {})
        out["test_iou"], out["test_dice"] = summary.get("iou_mean"), summary.get("dice_mean")
    except Exception as e:  # noqa: BLE001 - the training figures stand without the evaluation
        out["eval_error"] = f"{type(e).__name__}: {str(e)[:500]}"
    out["eval_s"] = time.perf_counter() - t_eval
    out["total_s"] = time.perf_counter() - t_start
    return out


def measure_loader(bundle: str, overlays: list[str], overrides: dict, seconds: float, min_epochs: int = 2) -> dict:
    """Images per second that a bundle's training loader (``train#dataloader``) delivers, workers included.

    The loader is built from the bundle's ``train.json`` (plus ``overlays``) exactly as training builds it: its
    ``CacheDataset`` is filled first (timed apart), then whole epochs are drawn until ``seconds`` have passed
    and at least ``min_epochs`` epochs ran; each epoch starts its worker processes anew, as in training.
    """
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(p) for p in _configs(bundle, ["train.json", *overlays])["config_file"]])
    parser.update(pairs=overrides)
    t0 = time.perf_counter()
    loader = parser.get_parsed_content("train#dataloader")
    cache_s = time.perf_counter() - t0
    images, epochs, first_batch = 0, 0, []
    t0 = time.perf_counter()
    while epochs < min_epochs or time.perf_counter() - t0 < seconds:
        e0 = time.perf_counter()
        for i, batch in enumerate(loader):
            if i == 0:
                first_batch.append(time.perf_counter() - e0)
            images += int(batch["image"].shape[0])
        epochs += 1
    elapsed = time.perf_counter() - t0
    return {
        "bundle": bundle,
        "batch_size": int(loader.batch_size),
        "num_workers": int(loader.num_workers),
        "n_train": len(loader.dataset),
        "cache_s": cache_s,
        "epochs": epochs,
        "images": images,
        "seconds": elapsed,
        "images_per_s": images / elapsed,
        "first_batch_s": sum(first_batch) / len(first_batch),
    }


def generate_glas(root: str, counts: list[int], image_size: list[int], seed: int = 0) -> None:
    """Synthetic GLaS in the Warwick layout (``monai_masksup.data.make_synthetic_glas``)."""
    from monai_masksup.data import make_synthetic_glas

    n_train, n_test_a, n_test_b = counts
    make_synthetic_glas(root, n_train=n_train, n_test_a=n_test_a, n_test_b=n_test_b, size=image_size, seed=seed)
    (Path(root) / "complete").write_text("ok\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", help="JSON spec of run_bundle")
    parser.add_argument("--result", help="where --spec writes its JSON result")
    parser.add_argument("--generate-glas", help="folder for synthetic GLaS data")
    parser.add_argument("--counts", type=int, nargs=3, default=[85, 60, 20], help="train, testA, testB images")
    parser.add_argument("--image-size", type=int, nargs=2, default=[224, 336], help="height width")
    args = parser.parse_args()
    if args.generate_glas:
        generate_glas(args.generate_glas, args.counts, args.image_size)
    if args.spec:
        if not args.result:
            parser.error("--spec needs --result")
        result = run_bundle(json.loads(args.spec))
        Path(args.result).write_text(json.dumps(result, indent=1))
    if not (args.spec or args.generate_glas):
        parser.error("give --spec or --generate-glas")


if __name__ == "__main__":
    sys.exit(main())
