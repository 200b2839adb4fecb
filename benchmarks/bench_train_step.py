"""Benchmark one MaskSup training step against one plain supervised step.

Both steps run through MONAI engines on a fixed in-memory batch (no data loading): the supervised step is
``monai.engines.SupervisedTrainer`` with ``BCEWithLogitsLoss``; the MaskSup step is
``monai_masksup.engines.MaskSupTrainer`` with ``MaskSupLoss`` and ``HoleMaskGenerator("high")`` masks drawn
every step (their cost is included). Every configuration runs in a fresh subprocess so that peak-memory
figures do not leak between configurations.

Memory: on CUDA ``torch.cuda.max_memory_allocated`` over the timed steps minus the memory allocated before them
(model, optimizer state after warm-up, batch). On CPU the increase of the process's peak resident set size
(``resource.getrusage(...).ru_maxrss``) from before the first (warm-up) step to after the last one, so it also
holds the optimizer state allocated at the first step; ``tracemalloc`` is not used because it does not see
torch's tensor allocations.

Time: the median over the timed steps of the wall-clock step time, and of the process CPU time
(``time.process_time``), which is less disturbed by other processes on a shared machine. The warm-up steps'
total wall time is reported apart (``warmup_s``): with ``torch.compile`` it holds the compilation.

``benchmarks/gpu_check.py`` imports :func:`build_network`, :func:`run_one` and :func:`run_in_subprocess` to time
the same steps on a GPU (with ``cfg["compile"]`` for ``torch.compile``), and :func:`hardware` to describe the
machine, so both report like figures.

Examples::

    python benchmarks/bench_train_step.py                       # CPU (and CUDA with AMP when present)
    python benchmarks/bench_train_step.py --device cpu --networks basicunet --steps 3
    python benchmarks/bench_train_step.py --device cuda --amp-dtype bfloat16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

MODES = ("supervised", "separate", "batched")


def build_network(name: str):
    """The benchmarked network: ``"levit384"`` (LeViT-UNet-384, 224 x 224 only) or ``"basicunet"`` (MONAI's
    ``BasicUNet`` with its default features), 3 input channels, 1 output channel."""
    if name == "basicunet":
        from monai.networks.nets import BasicUNet

        return BasicUNet(spatial_dims=2, in_channels=3, out_channels=1)
    if name == "levit384":
        from monai_masksup.networks import LeViTUNet

        return LeViTUNet(variant="384", in_channels=3, out_channels=1)
    raise ValueError(f"--networks: unknown network {name!r}; choose from basicunet, levit384.")


def run_one(cfg: dict) -> dict:
    """Time ``cfg["warmup"] + cfg["steps"]`` training steps of one configuration in this process.

    ``cfg`` holds ``network``, ``device``, ``mode`` (one of :data:`MODES`), ``amp``, ``amp_dtype``,
    ``batch_size``, ``size``, ``warmup``, ``steps`` and ``threads``; optionally ``compile`` (wrap the network in
    ``torch.compile`` through the trainer's ``compile`` argument) and ``compile_backend`` (``torch.compile``'s
    backend, default inductor).
    """
    import torch
    from ignite.engine import Events
    from monai.engines import SupervisedTrainer

    from monai_masksup.engines import MaskSupTrainer
    from monai_masksup.losses import MaskSupLoss
    from monai_masksup.transforms import HoleMaskGenerator

    if cfg["threads"] > 0:
        torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    device = torch.device(cfg["device"])
    net = build_network(cfg["network"]).to(device)
    optimizer = torch.optim.Adam(net.parameters(), 1e-4)
    size, bs = cfg["size"], cfg["batch_size"]
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    label = (((yy - size / 2) ** 2 + (xx - size / 3) ** 2) < (size / 4) ** 2).float()
    batch = {
        "image": (torch.rand(bs, 3, size, size) * 0.5 + 0.5 * label).to(device),
        "label": label.expand(bs, 1, size, size).contiguous().to(device),
    }
    data = [batch] * (cfg["warmup"] + cfg["steps"])
    amp_kwargs = {"dtype": getattr(torch, cfg["amp_dtype"])} if cfg["amp"] else None
    common = dict(
        device=device,
        max_epochs=1,
        train_data_loader=data,
        network=net,
        optimizer=optimizer,
        amp=cfg["amp"],
        amp_kwargs=amp_kwargs,
        decollate=False,
        compile=bool(cfg.get("compile", False)),
        compile_kwargs={"backend": cfg["compile_backend"]} if cfg.get("compile_backend") else None,
    )
    if cfg["mode"] == "supervised":
        trainer = SupervisedTrainer(loss_function=torch.nn.BCEWithLogitsLoss(), **common)
    else:
        trainer = MaskSupTrainer(
            loss_function=MaskSupLoss(),
            mask_generator=HoleMaskGenerator("high"),
            branch_mode=cfg["mode"],
            mask_seed=0,
            **common,
        )

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times: list[float] = []
    warmup_times: list[float] = []
    cpu_times: list[float] = []
    marks: dict = {}

    @trainer.on(Events.ITERATION_STARTED)
    def _start(engine):
        sync()
        if engine.state.iteration == 1:
            # ru_maxrss is a high-water mark that cannot be reset: its baseline must precede the first step
            marks["rss_before_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if engine.state.iteration == cfg["warmup"] + 1 and device.type == "cuda":
            # CUDA peak counters can be reset: baseline once the warm-up has allocated the optimizer state
            torch.cuda.reset_peak_memory_stats(device)
            marks["cuda_before"] = torch.cuda.memory_allocated(device)
        marks["t0"], marks["c0"] = time.perf_counter(), time.process_time()

    @trainer.on(Events.ITERATION_COMPLETED)
    def _stop(engine):
        sync()
        if engine.state.iteration > cfg["warmup"]:
            times.append(time.perf_counter() - marks["t0"])
            cpu_times.append(time.process_time() - marks["c0"])
        else:
            warmup_times.append(time.perf_counter() - marks["t0"])

    trainer.run()
    step = statistics.median(times)
    result = {
        **cfg,
        "step_s": step,
        "images_per_s": bs / step,
        "times": times,
        "cpu_s": statistics.median(cpu_times),
        "warmup_s": sum(warmup_times),
    }
    if device.type == "cuda":
        result["peak_mem_mb"] = (torch.cuda.max_memory_allocated(device) - marks["cuda_before"]) / 2**20
    else:
        result["peak_mem_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - marks["rss_before_kb"]) / 1024
    # cost of the masks alone (part of the MaskSup step)
    if cfg["mode"] != "supervised":
        gen, rng = HoleMaskGenerator("high"), torch.Generator().manual_seed(1)
        sync()
        t0 = time.perf_counter()
        for _ in range(cfg["steps"]):
            gen(bs, (size, size), device=device, generator=rng)
        sync()
        result["mask_s"] = (time.perf_counter() - t0) / cfg["steps"]
    return result


def run_in_subprocess(cfg: dict, timeout: float | None = None) -> dict:
    """:func:`run_one` in a fresh Python process (so peak memory does not leak between configurations).

    Returns ``cfg`` with ``"error"`` (the last line of its stderr, or that it timed out) when it fails or runs
    longer than ``timeout`` seconds.
    """
    try:
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--single", json.dumps(cfg)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {**cfg, "error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {**cfg, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def hardware(device: str) -> dict:
    """Device name, CPU, library versions and the precision flags that change fp32 speed.

    Args:
        device: ``"cpu"`` or ``"cuda"`` (then GPU 0 is described).

    Returns:
        a JSON-ready dict; its ``"summary"`` is the one-line description both benchmarks print.
    """
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if device == "cuda" else f"CPU ({cpu})",
        "cpu": f"{cpu}, {os.cpu_count()} logical cores",
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    try:
        import monai

        info["monai"] = monai.__version__
    except ImportError:
        info["monai"] = None
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(
            cuda=torch.version.cuda,
            memory_gib=props.total_memory / 2**30,
            multiprocessors=props.multi_processor_count,
            tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
            tf32_cudnn=torch.backends.cudnn.allow_tf32,
            cudnn_benchmark=torch.backends.cudnn.benchmark,
        )
    info["summary"] = (
        f"{info['device_name']}; {info['cpu']}; torch {info['torch']}"
        + (f", CUDA {info.get('cuda')}" if device == "cuda" else "")
        + f", MONAI {info['monai']}, Python {info['python']}"
    )
    return info


def _table(results: list[dict]) -> str:
    head = (
        "| network | device | precision | step | ms/step (wall) | images/s | x supervised | CPU ms/step | "
        "x supervised (CPU time) | peak mem MiB | masks ms |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    base = {(r["network"], r["device"], r["amp"]): r for r in results if r["mode"] == "supervised" and "error" not in r}
    for r in results:
        precision = r["amp_dtype"] if r["amp"] else "fp32"
        if "error" in r:
            rows.append(f"| {r['network']} | {r['device']} | {precision} | {r['mode']} | error: {r['error']} |||||||")
            continue
        ref = base.get((r["network"], r["device"], r["amp"]))
        ratio = r["step_s"] / ref["step_s"] if ref else float("nan")
        cpu_ratio = r["cpu_s"] / ref["cpu_s"] if ref else float("nan")
        mask_ms = f"{1000 * r['mask_s']:.0f}" if "mask_s" in r else "-"
        rows.append(
            f"| {r['network']} | {r['device']} | {precision} | {r['mode']} | {1000 * r['step_s']:.0f} | "
            f"{r['images_per_s']:.2f} | {ratio:.2f} | {1000 * r['cpu_s']:.0f} | {cpu_ratio:.2f} | "
            f"{r['peak_mem_mb']:.0f} | {mask_ms} |"
        )
    return "\n".join(rows)


def _amp_speedups(results: list[dict]) -> list[str]:
    lines = []
    for net in sorted({r["network"] for r in results}):
        def step(mode, amp):
            return next(
                (r["step_s"] for r in results if r["network"] == net and r["device"] == "cuda" and r["mode"] == mode
                 and r["amp"] == amp and "error" not in r),
                None,
            )

        fp32_sep, amp_batched = step("separate", False), step("batched", True)
        if fp32_sep and amp_batched:
            speedup = fp32_sep / amp_batched
            lines.append(f"{net}: separate fp32 / batched AMP step time = {speedup:.2f}x (target >= 1.5x)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="auto: CPU always, plus CUDA when available")
    parser.add_argument("--networks", nargs="+", default=["levit384", "basicunet"], help="levit384 and/or basicunet")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before timing")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (the median is reported)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    parser.add_argument("--amp-dtype", choices=["float16", "bfloat16"], default="float16",
                        help="AMP precision on CUDA (float16 uses MONAI's GradScaler)")
    parser.add_argument("--single", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        print(json.dumps(run_one(json.loads(args.single))))
        return

    import torch

    devices = ["cpu"] if args.device == "cpu" else ["cuda"] if args.device == "cuda" else ["cpu"]
    if args.device == "auto" and torch.cuda.is_available():
        devices.append("cuda")
    if "cuda" in devices and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    results = []
    for device in devices:
        precisions = [False, True] if device == "cuda" else [False]
        for net in args.networks:
            for amp in precisions:
                for mode in MODES:
                    cfg = dict(network=net, device=device, mode=mode, amp=amp, amp_dtype=args.amp_dtype,
                               batch_size=args.batch_size, size=args.size, warmup=args.warmup, steps=args.steps,
                               threads=args.threads)
                    r = run_in_subprocess(cfg)
                    results.append(r)
                    status = r.get("error") or f"{1000 * r['step_s']:.0f} ms/step"
                    print(f"# {net} {device} {'amp' if amp else 'fp32'} {mode}: {status}", file=sys.stderr, flush=True)
    print(hardware(devices[-1])["summary"])
    print(f"batch {args.batch_size} x {args.size}x{args.size}, warm-up {args.warmup}, timed {args.steps} (median)")
    print(_table(results))
    for line in _amp_speedups(results):
        print(line)
    if "cuda" not in devices:
        print("GPU not measured (no CUDA device).")


if __name__ == "__main__":
    main()
