"""
Benchmark of hole mask generation: ``HoleMaskGenerator`` (batched torch) against a per-sample OpenCV
drawing loop making the same primitives as PConv-Keras' ``MaskGenerator`` (thick ``cv2.line``, filled
``cv2.circle``, thick ``cv2.ellipse`` arcs).

OpenCV is a benchmark-only extra (``pip install opencv-python-headless`` or ``pip install -e .[bench]``);
without it the OpenCV rows are skipped with a note.

Usage::

    python benchmarks/bench_masks.py                      # batches of 16 at 224 x 224, CPU (+ GPU if present)
    python benchmarks/bench_masks.py --repeats 50 --threads 2
    python benchmarks/bench_masks.py --train-step         # + share of mask generation in one MaskSup step
    python benchmarks/bench_masks.py --per-sample         # + RandHoleMaskd per sample, draw_batch 1 and 16

``--train-step`` measures the time of drawing the hole masks of a batch of 8 at 224 x 224 (default "high"
coverage) against one ``MaskSupTrainer`` iteration (clean + masked forward, MaskSup loss, backward, SGD step)
of a MONAI ``BasicUNet`` with features (16, 32, 64, 128, 256, 16) on the same device; target <= 5 %.

Rates are masks per second from the median wall time of ``--repeats`` batches; the CPU time of the process
is printed as well, because on a shared machine the wall time also counts waiting for a core. The CPU methods
are timed in rounds (one batch of each method per round), so that a slow spell of a shared machine falls on
all of them alike; the fastest batch of each is printed too, and the ratios are given for both. "faults" is
the mean number of minor page faults per CPU batch: memory the allocator had to map in afresh, which costs
a few microseconds per 4 KiB page. All methods share one process heap, so a method that leaves a large heap
behind (the coverage-controlled ones) changes the others' faults: ``--coverage none`` times the like-for-like
pair on its own.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import subprocess
import time

import numpy as np
import torch

from monai_masksup.transforms import HoleMaskGenerator


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def time_batches(fn, repeats: int, warmup: int = 2, sync=None) -> tuple[float, float]:
    """Median wall time and median process CPU time of one call, in seconds."""
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    for _ in range(repeats):
        if sync:
            sync()
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        if sync:
            sync()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def minor_page_faults() -> int:
    """Minor page faults of this process so far (0 where ``resource`` is missing, e.g. on Windows)."""
    try:
        import resource
    except ImportError:
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_interleaved(fns: dict, repeats: int, warmup: int = 2) -> dict[str, tuple[float, float, float, float]]:
    """Per function: median wall time, fastest wall time and median process CPU time of one call, in seconds,
    and the mean number of minor page faults per call (fresh memory the allocator had to map in), calling every
    function once per round."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    walls: dict[str, list[float]] = {name: [] for name in fns}
    cpus: dict[str, list[float]] = {name: [] for name in fns}
    faults = dict.fromkeys(fns, 0)
    for _ in range(repeats):
        for name, fn in fns.items():
            f0, w0, c0 = minor_page_faults(), time.perf_counter(), time.process_time()
            fn()
            walls[name].append(time.perf_counter() - w0)
            cpus[name].append(time.process_time() - c0)
            faults[name] += minor_page_faults() - f0
    return {
        name: (statistics.median(walls[name]), min(walls[name]), statistics.median(cpus[name]), faults[name] / repeats)
        for name in fns
    }


def opencv_batch_fn(batch_size: int, size: int):
    """A per-sample OpenCV loop in the manner of PConv-Keras, returning a float32 (B, 1, H, W) tensor."""
    import cv2  # benchmark-only dependency

    rng = random.Random(2018)
    h = w = size
    scale = max(3, int((w + h) * 0.03))  # as HoleMaskGenerator: at least 3 pixels

    def one() -> np.ndarray:
        img = np.zeros((h, w), np.uint8)
        for _ in range(rng.randint(1, 20)):
            p0, p1 = (rng.randint(1, w), rng.randint(1, h)), (rng.randint(1, w), rng.randint(1, h))
            cv2.line(img, p0, p1, 1, rng.randint(3, scale))
        for _ in range(rng.randint(1, 20)):
            cv2.circle(img, (rng.randint(1, w), rng.randint(1, h)), rng.randint(3, scale), 1, -1)
        for _ in range(rng.randint(1, 20)):
            centre, axes = (rng.randint(1, w), rng.randint(1, h)), (rng.randint(1, w), rng.randint(1, h))
            a1, a2, a3 = rng.randint(3, 180), rng.randint(3, 180), rng.randint(3, 180)
            cv2.ellipse(img, centre, axes, a1, a2, a3, 1, rng.randint(3, scale))
        return img

    def batch() -> torch.Tensor:
        return torch.from_numpy(np.stack([one() for _ in range(batch_size)])[:, None].astype(np.float32))

    return batch


def bench_generation(args) -> dict[str, float]:
    spatial = (args.size, args.size)
    rates: dict[str, float] = {}
    best: dict[str, float] = {}
    print(f"\nMask generation, batches of {args.batch_size} at {args.size} x {args.size}, {args.repeats} repeats")
    print(f"{'method':45s} {'ms/batch':>9s} {'fastest':>8s} {'cpu ms':>8s} {'masks/s':>9s} {'faults':>7s}")

    def report(name: str, wall: float, fastest: float, cpu: float, faults: float | None = None) -> None:
        rates[name], best[name] = args.batch_size / wall, args.batch_size / fastest
        faults_col = "" if faults is None else f" {faults:7.0f}"
        print(f"{name:45s} {wall * 1e3:9.2f} {fastest * 1e3:8.2f} {cpu * 1e3:8.2f} {rates[name]:9.0f}{faults_col}")

    def generator_fn(coverage: str, device: str):
        gen = HoleMaskGenerator(None if coverage == "none" else coverage)
        g = torch.Generator().manual_seed(0)
        return lambda: gen.gen(args.batch_size, spatial, device=device, generator=g)

    cpu_fns = {}
    try:
        cpu_fns["opencv loop (CPU)"] = opencv_batch_fn(args.batch_size, args.size)
    except ImportError:
        print("opencv loop (CPU): not measured, opencv is not installed (pip install opencv-python-headless)")
    for coverage in args.coverage:
        cpu_fns[f"HoleMaskGenerator coverage={coverage} (cpu)"] = generator_fn(coverage, "cpu")
    for name, times in time_interleaved(cpu_fns, args.repeats).items():
        report(name, *times)

    if torch.cuda.is_available():
        for coverage in args.coverage:
            wall, cpu = time_batches(generator_fn(coverage, "cuda"), args.repeats, sync=torch.cuda.synchronize)
            report(f"HoleMaskGenerator coverage={coverage} (cuda)", wall, wall, cpu)
    else:
        print("GPU: not measured (no CUDA device)")

    base = rates.get("opencv loop (CPU)")
    if base:
        # Like for like is coverage=none: the OpenCV loop draws raw PConv-Keras masks (same primitive counts,
        # thicknesses and radii); the coverage-controlled rows have no OpenCV equivalent short of rejection
        # sampling, so their ratios only say what the bin guarantee costs.
        print("\nratio to the OpenCV loop (> 1 = faster; like for like: coverage=none), median / fastest batch:")
        for name, rate in rates.items():
            if name != "opencv loop (CPU)":
                print(f"  {name:45s} {rate / base:6.2f}x {best[name] / best['opencv loop (CPU)']:6.2f}x")
    return rates


def bench_train_step(args) -> None:
    """Share of hole mask generation in one MaskSup training step (BasicUNet, batch 8, 224 x 224)."""
    print("\nMaskSup train step share (batch 8, 224 x 224, BasicUNet features (16, 32, 64, 128, 256, 16))")
    try:
        from monai.networks.nets import BasicUNet

        from monai_masksup.engines import MaskSupTrainer
    except ImportError as e:
        print(f"not measured: {e}")
        return
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch, size, steps = 8, 224, args.train_steps
    net = BasicUNet(spatial_dims=2, in_channels=3, out_channels=1, features=(16, 32, 64, 128, 256, 16)).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    data = [
        {"image": torch.rand(batch, 3, size, size), "label": (torch.rand(batch, 1, size, size) > 0.5).float()}
        for _ in range(steps + 1)
    ]
    gen = HoleMaskGenerator("high")
    try:
        from ignite.engine import Events

        trainer = MaskSupTrainer(
            device=device, max_epochs=1, train_data_loader=data, network=net, optimizer=opt, mask_generator=gen
        )
        times: list[float] = []

        @trainer.on(Events.ITERATION_STARTED)
        def _start(engine):
            times.append(-time.perf_counter())

        @trainer.on(Events.ITERATION_COMPLETED)
        def _stop(engine):
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[-1] += time.perf_counter()

        trainer.run()
        step = statistics.median(times[1:])  # the first iteration warms up
    except Exception as e:  # the trainer is built by another helper: report instead of failing the benchmark
        print(f"not measured: MaskSupTrainer step failed: {type(e).__name__}: {e}")
        return
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    g = torch.Generator().manual_seed(0)
    mask, _ = time_batches(lambda: gen.gen(batch, (size, size), device=device, generator=g), args.repeats, sync=sync)
    print(f"one MaskSup step ({device}): {step * 1e3:.1f} ms; masks for the batch: {mask * 1e3:.2f} ms")
    print(f"share of mask generation: {100 * mask / step:.2f} % (target <= 5 %)")


def bench_per_sample(args) -> None:
    """Per-sample cost of ``RandHoleMaskd`` on a (3, size, size) image, as in a data loader, by ``draw_batch``."""
    from monai_masksup.transforms import RandHoleMaskd

    print(f"\nRandHoleMaskd per sample, (3, {args.size}, {args.size}) float32 image, {args.repeats} calls")
    print(f"{'coverage':10s} {'draw_batch':>10s} {'ms / sample':>12s}")
    image = {"image": torch.rand(3, args.size, args.size)}
    for coverage in args.coverage:
        for draw_batch in (1, args.batch_size):
            cov = None if coverage == "none" else coverage
            transform = RandHoleMaskd(coverage=cov, draw_batch=draw_batch).set_random_state(0)
            # whole draws only: a multiple of draw_batch calls, after one draw of warm-up
            n = max(args.repeats // draw_batch, 1) * draw_batch
            for _ in range(draw_batch):
                transform(image)
            t0 = time.perf_counter()
            for _ in range(n):
                transform(image)
            print(f"{coverage:10s} {draw_batch:10d} {(time.perf_counter() - t0) / n * 1e3:12.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument(
        "--coverage", nargs="+", default=["none", "low", "high"], help="coverage settings: none, low, high"
    )
    parser.add_argument(
        "--train-step",
        action="store_true",
        help="also measure the share of mask generation in one MaskSupTrainer step (batch 8, 224 x 224)",
    )
    parser.add_argument("--train-steps", type=int, default=3, help="timed MaskSup steps for --train-step")
    parser.add_argument(
        "--per-sample",
        action="store_true",
        help="also time RandHoleMaskd per sample with draw_batch 1 and --batch-size (masks drawn ahead)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_model()}, {torch.get_num_threads()} torch threads; torch {torch.__version__}")
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name()}")
    bench_generation(args)
    if args.train_step:
        bench_train_step(args)
    if args.per_sample:
        bench_per_sample(args)


if __name__ == "__main__":
    main()
