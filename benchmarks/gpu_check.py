"""One prepared GPU check of monai_masksup (issue #17): one command, one JSON file and one markdown table out.

In order, within ``--budget-s`` seconds (default 540, under 9 minutes on one H100 / H200):

1. ``gpu_tests``: the test suite's ``gpu`` marker (``pytest -m gpu`` in a subprocess): pass / fail counts.
2. ``train_step``: the MaskSup step of ``bench_train_step.py`` (LeViT-UNet-384 at 224², Adam, fixed batch) at
   batches 8, 32 and 64: the official recipe (two fp32 passes = ``separate`` mode in fp32, as
   ``bench_train_step.py`` reproduces it) against ours in ``separate`` and ``batched`` modes with fp32, fp16
   (``GradScaler``) and bf16 AMP; images/s, peak memory, mask share and model FLOP utilisation (forward FLOPs
   counted by ``torch.utils.flop_counter.FlopCounterMode``, x3 for forward + backward, x2 branches, against
   the device's dense bf16 peak from ``gpu_check_report.DENSE_BF16_TFLOPS``; unknown device: MFU null).
   Eager configurations run in this process (CUDA peak-memory counters are reset per configuration).
3. ``masks``: hole masks per second on the device ("high" and raw) against ``bench_masks.py``'s CPU OpenCV
   loop at the same batch (null, with the reason, where OpenCV is not installed).
4. ``loader``: images/s that the Kvasir bundle's training loader delivers (its workers, its ``CacheDataset``)
   against the images/s the fastest measured step consumes at the loader's batch size.
5. ``train_step`` with ``torch.compile``: the same configurations compiled, each in a subprocess killed at
   its deadline, in order of interest (batched bf16 first) at the batch where the eager batched bf16 step was
   fastest, then the other batches, for as long as the compile share of the budget lasts.
6. ``bundles``: the GLaS bundle on generated data (85 / 60 / 20 images, the real counts, generated in the
   background from the start) and the Kvasir bundle on the carried real subsets, with ``--paper_protocol True``
   at the bundle's schedule (the paper's: 200 epochs, batch 8, separate fp32); each is stopped at an epoch
   boundary when the next epoch and its evaluation would overrun its share of the budget (stated: epochs
   run of 200, and the estimated full-schedule time), then evaluated with ``evaluate.json``.

Every phase has a deadline at a fixed fraction of the budget; time a phase leaves unused goes to the next. The
JSON and the markdown are rewritten after every measured item, so a run cut short still leaves its figures.
Cheap, fixed-cost phases run before the compile and bundle phases, which absorb whatever time is left.

Usage (see docs/benchmarks.md, "GPU", for the device tool's command)::

    bash benchmarks/gpu_check_prepare.sh                     # copy MONAI, ignite and the data into .device_carry/
    python benchmarks/gpu_check.py --kvasir-dir .device_carry/data/kvasir_seg/Kvasir-SEG \\
        --cvc-dir .device_carry/data/cvc_clinicdb/CVC-ClinicDB --out gpu_check_out
    python benchmarks/gpu_check.py --quick --device cpu --out /tmp/gc   # tiny sizes, two steps each (CI)
    python benchmarks/gpu_check.py --from-json gpu_check_out/gpu_check.json --update-docs
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path[:0] = [str(BENCH_DIR)] if str(BENCH_DIR) not in sys.path else []

import gpu_check_report as report  # noqa: E402
from bench_train_step import hardware  # noqa: E402

#: cumulative fraction of the budget at which each phase must end (later phases get what earlier ones leave)
PHASE_DEADLINES = {
    "gpu_tests": 0.15,
    "train_step": 0.42,
    "masks": 0.47,
    "loader": 0.53,
    "compile": 0.75,  # one inductor compile of LeViT-UNet's training step is expected to take about a minute
    "bundle_glas": 0.86,
    "bundle_kvasir": 0.97,
}
#: (mode, precision) in the order they are measured at each batch; ("separate", "fp32") is the official recipe
CONFIGS = (
    ("separate", "fp32"),
    ("batched", "bf16"),
    ("separate", "bf16"),
    ("batched", "fp32"),
    ("separate", "fp16"),
    ("batched", "fp16"),
)
AMP_DTYPES = {"fp32": None, "fp16": "float16", "bf16": "bfloat16"}
GLAS_COUNTS, GLAS_SIZE = (85, 60, 20), (224, 336)


class Run:
    """The result dictionary, its deadlines, and its files (rewritten after every item)."""

    def __init__(self, args):
        self.args = args
        self.t0 = time.perf_counter()
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.result: dict = {
            "schema": 1,
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "quick": args.quick,
            "budget_s": args.budget_s,
            "finished": False,
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "gpu_tests": {"status": "pending"},
            "train_step": {"status": "pending", "rows": []},
            "masks": {"status": "pending", "rows": []},
            "loader": {"status": "pending"},
            "bundles_status": {"status": "pending"},
            "bundles": {},
        }

    def left(self, phase: str) -> float:
        """Seconds until ``phase``'s deadline."""
        return self.t0 + PHASE_DEADLINES[phase] * self.args.budget_s - time.perf_counter()

    def save(self) -> None:
        self.result["elapsed_s"] = time.perf_counter() - self.t0
        # a bug in the report must not stop the measurements: the JSON is written whatever happens
        try:
            self.result["targets"] = report.evaluate_targets(self.result)
            markdown = report.render_markdown(self.result)
        except Exception:  # noqa: BLE001
            self.result["report_error"] = traceback.format_exc()[-2000:]
            markdown = f"report failed, see report_error in gpu_check.json\n\n```\n{self.result['report_error']}\n```\n"
        for name, text in (("gpu_check.json", json.dumps(self.result, indent=1, default=str)), ("gpu_check.md", markdown)):
            tmp = self.out / (name + ".tmp")
            tmp.write_text(text)
            tmp.replace(self.out / name)


def measured_bf16_tflops(device: str) -> float | None:
    """Rate of an 8192³ bf16 matrix product on the device (median of 10 after 3 warm-ups); None on CPU."""
    if device != "cuda":
        return None
    import torch

    a, b = (torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    times = []
    for i in range(13):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        torch.cuda.synchronize()
        if i >= 3:
            times.append(start.elapsed_time(end) / 1000)
    return 2 * 8192**3 / statistics.median(times) / 1e12


# ---------------------------------------------------------------------------------------------- phase 1: tests
def phase_gpu_tests(run: Run) -> None:
    sec = run.result["gpu_tests"]
    timeout = run.left("gpu_tests")
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
           "--continue-on-collection-errors", *run.args.pytest_paths]
    sec.update(status="running", command=" ".join(cmd[1:]))
    run.save()
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(timeout, 1))
        output, rc = proc.stdout + proc.stderr, proc.returncode
        status = "done"
    except subprocess.TimeoutExpired as e:
        output = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        rc, status = None, "timed out"
        sec["reason"] = f"killed after {timeout:.0f} s"
    counts = {}
    summary = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|skipped|deselected|error)", line)]
    for n, word in re.findall(r"(\d+) (passed|failed|skipped|deselected|errors?|xfailed|xpassed)", summary[-1] if summary else ""):
        counts["errors" if word.startswith("error") else word] = int(n)
    sec.update(
        status=status,
        returncode=rc,
        seconds=time.perf_counter() - t0,
        passed=counts.get("passed", 0),
        failed=counts.get("failed", 0),
        errors=counts.get("errors", 0),
        skipped=counts.get("skipped", 0),
        deselected=counts.get("deselected", 0),
        summary=summary[-1].strip("= ") if summary else None,
        failures=[line for line in output.splitlines() if line.startswith(("FAILED", "ERROR"))],
        skip_reasons=sorted({line.split(": ", 1)[-1] for line in output.splitlines() if line.startswith("SKIPPED")}),
        tail=output[-3000:],
    )
    run.save()


# ------------------------------------------------------------------------------------------ phase 2: the step
def forward_flops(network: str, batch: int, size: int, device: str) -> float:
    """FLOPs of one forward pass over a batch, by ``torch.utils.flop_counter.FlopCounterMode``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from bench_train_step import build_network

    net = build_network(network).to(device)
    x = torch.rand(batch, 3, size, size, device=device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(x)
    del net, x
    return float(counter.get_total_flops())


def step_cfg(run: Run, batch: int, mode: str, precision: str, compile_: bool) -> dict:
    args = run.args
    cfg = dict(
        network=args.network, device=args.device, mode=mode, amp=precision != "fp32",
        amp_dtype=AMP_DTYPES[precision] or "bfloat16", batch_size=batch, size=args.size,
        warmup=args.warmup, steps=args.steps, threads=args.threads, compile=compile_,
    )
    if compile_ and args.compile_backend:
        cfg["compile_backend"] = args.compile_backend
    return cfg


def finish_row(run: Run, cfg: dict, measured: dict, precision: str) -> dict:
    """Step figures of one configuration, with MFU and mask share, as a table row."""
    sec = run.result["train_step"]
    row = {
        "batch_size": cfg["batch_size"], "mode": cfg["mode"], "precision": precision,
        "compile": cfg["compile"], "official": cfg["mode"] == "separate" and precision == "fp32" and not cfg["compile"],
    }
    if "error" in measured:
        row["error"] = measured["error"]
        return row
    row.update({k: measured[k] for k in ("step_s", "images_per_s", "cpu_s", "warmup_s", "times") if k in measured})
    if run.args.device == "cuda":
        row["peak_mem_mb"] = measured.get("peak_mem_mb")
    else:
        row["peak_mem_mb"] = None  # ru_maxrss is a process high-water mark: meaningless for in-process configs
    flops = sec.get("forward_flops", {}).get(str(cfg["batch_size"]))
    if flops is not None:
        row["step_flops"] = 6 * flops
        row["achieved_tflops"] = 6 * flops / measured["step_s"] / 1e12
        row["mfu"] = row["achieved_tflops"] / sec["peak_tflops"] if sec.get("peak_tflops") else None
    if "mask_s" in measured:
        row["mask_s"] = measured["mask_s"]
        row["mask_share"] = measured["mask_s"] / measured["step_s"]
    return row


def precisions(run: Run) -> list[str]:
    if run.args.device == "cuda":
        return ["fp32", "fp16", "bf16"]
    return ["fp32", "bf16"]  # CPU: fp16 convolutions have no fast kernels (seconds per tiny step)


def phase_train_step(run: Run) -> None:
    import torch

    from bench_train_step import run_one

    args, sec = run.args, run.result["train_step"]
    sec.update(status="running", network=args.network, size=args.size, batches=args.batches,
               warmup=args.warmup, steps=args.steps, precisions=precisions(run))
    if args.device == "cpu":
        sec["skipped_configs"] = "fp16 on CPU (no fast fp16 convolutions)"
    sec.setdefault("forward_flops", {})
    run.save()
    configs = [(b, m, p) for b in args.batches for m, p in CONFIGS if p in precisions(run)]
    for i, (batch, mode, precision) in enumerate(configs):
        if run.left("train_step") <= 0:
            sec.update(status="partial", reason=f"budget: {len(configs) - i} eager configurations not run")
            break
        if str(batch) not in sec["forward_flops"]:
            try:
                sec["forward_flops"][str(batch)] = forward_flops(args.network, batch, args.size, args.device)
            except Exception as e:  # noqa: BLE001 - a failed count leaves MFU null, the timing still runs
                sec["flops_error"] = f"{type(e).__name__}: {e}"
        cfg = step_cfg(run, batch, mode, precision, compile_=False)
        try:
            measured = run_one(cfg)
        except Exception as e:  # noqa: BLE001 - e.g. out of memory: record it and go on
            measured = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"}
        sec["rows"].append(finish_row(run, cfg, measured, precision))
        gc.collect()
        if args.device == "cuda":
            torch.cuda.empty_cache()
        run.save()
    else:
        sec["status"] = "done"
    run.save()


# ------------------------------------------------------------------------------------------- phase 3: masks
def phase_masks(run: Run) -> None:
    import torch

    import bench_masks
    from monai_masksup.transforms import HoleMaskGenerator

    args, sec = run.args, run.result["masks"]
    sec["status"] = "running"
    sync = torch.cuda.synchronize if args.device == "cuda" else None
    try:
        import cv2

        sec["opencv_note"] = f"OpenCV {cv2.__version__} on {os.cpu_count()} logical cores, 1 thread per loop"
        have_cv = True
    except ImportError as e:
        sec["opencv_note"] = f"null: OpenCV is not installed here ({e})"
        have_cv = False
    for batch in args.batches:
        if run.left("masks") <= 0:
            sec.update(status="partial", reason="budget")
            break
        row: dict = {"batch_size": batch}
        size = (args.size, args.size)
        for coverage, key in (("high", "high"), (None, "raw")):
            gen, g = HoleMaskGenerator(coverage), torch.Generator().manual_seed(0)
            wall, _ = bench_masks.time_batches(
                lambda: gen(batch, size, device=args.device, generator=g), args.mask_repeats, sync=sync
            )
            row[f"{key}_masks_per_s"] = batch / wall
        if have_cv:
            fn = bench_masks.opencv_batch_fn(batch, args.size)
            wall, _ = bench_masks.time_batches(fn, max(3, args.mask_repeats // 4))
            row["opencv_masks_per_s"] = batch / wall
        else:
            row["opencv_masks_per_s"] = None
        sec["rows"].append(row)
        run.save()
    else:
        sec["status"] = "done"
    run.save()


# ------------------------------------------------------------------------------------------ phase 4: loader
def kvasir_overrides(run: Run, bundle_root: Path) -> dict:
    """Kvasir bundle overrides for the carried real subsets (quick mode: a handful of frames)."""
    args = run.args
    overrides = {"kvasir_dir": str(args.kvasir_dir), "cvc_dir": str(args.cvc_dir), "bundle_root": str(bundle_root)}
    if args.quick:
        kvasir_ids = sorted(p.stem for p in (Path(args.kvasir_dir) / "images").glob("*.jpg"))[:6]
        cvc_ids = sorted((p.stem for p in (Path(args.cvc_dir) / "Original").glob("*.tif")), key=int)[:6]
        overrides.update(kvasir_train_ids=kvasir_ids, cvc_train_ids=cvc_ids[:4], cvc_test_ids=cvc_ids[4:])
    return overrides


def kvasir_missing(run: Run) -> str | None:
    for name, path in (("--kvasir-dir", run.args.kvasir_dir), ("--cvc-dir", run.args.cvc_dir)):
        if not Path(path).is_dir():
            return f"{name} {path} is not a folder (run benchmarks/gpu_check_prepare.sh and carry .device_carry)"
    return None


def phase_loader(run: Run, work: Path) -> None:
    from gpu_check_bundle import measure_loader

    sec = run.result["loader"]
    missing = kvasir_missing(run)
    if missing:
        sec.update(status="skipped", reason=missing)
        run.save()
        return
    sec["status"] = "running"
    run.save()
    overlays = ["demo.json"] if run.args.quick else []
    seconds = max(1.0, min(run.args.loader_seconds, run.left("loader") - 10))
    try:
        # the training set of the bundle run below (paper protocol: every training frame, none held out)
        overrides = {**kvasir_overrides(run, work / "loader"), "paper_protocol": True}
        sec.update(measure_loader("kvasir", overlays, overrides, seconds))
    except Exception as e:  # noqa: BLE001
        sec.update(status="error", reason=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()[-2000:])
        run.save()
        return
    rows = report.ok_rows(run.result)
    same = [r for r in rows if r["batch_size"] == sec["batch_size"]]
    pool = same or rows
    if pool:
        fastest = max(pool, key=lambda r: r["images_per_s"])
        sec["step_images_per_s"] = fastest["images_per_s"]
        sec["step_label"] = (
            f"the fastest step at batch {fastest['batch_size']} ({report.row_label(fastest)}, "
            f"{fastest['images_per_s']:.0f} images/s)"
            + ("" if same else f"; no step was timed at the loader's batch {sec['batch_size']}")
        )
        official = next((r for r in same if r.get("official")), None)
        if official:
            sec["official_step_images_per_s"] = official["images_per_s"]
    sec["status"] = "done"
    run.save()


# ----------------------------------------------------------------------------------------- phase 5: compile
def phase_compile(run: Run) -> None:
    from bench_train_step import run_in_subprocess

    args, sec = run.args, run.result["train_step"]
    eager = report.ok_rows(run.result)
    bf16 = [r for r in eager if r["mode"] == "batched" and r["precision"] == "bf16"]
    first = max(bf16, key=lambda r: r["images_per_s"])["batch_size"] if bf16 else args.batches[0]
    batches = [first] + [b for b in args.batches if b != first]
    order = [(b, m, p) for b in batches for m, p in (CONFIGS[1], CONFIGS[0], *CONFIGS[2:]) if p in precisions(run)]
    order = order[: args.compile_max] if args.compile_max else order
    estimate = args.compile_estimate_s
    for i, (batch, mode, precision) in enumerate(order):
        left = run.left("compile")
        if left < estimate:
            sec["compile_note"] = (
                f"{len(order) - i} compiled configurations not run: {left:.0f} s left of the compile share, "
                f"one takes about {estimate:.0f} s"
            )
            break
        cfg = step_cfg(run, batch, mode, precision, compile_=True)
        t0 = time.perf_counter()
        measured = run_in_subprocess(cfg, timeout=left)
        estimate = time.perf_counter() - t0
        sec["rows"].append(finish_row(run, cfg, measured, precision))
        run.save()
    sec["compile_backend"] = args.compile_backend or "inductor"
    run.save()


# ----------------------------------------------------------------------------------------- phase 6: bundles
def start_glas_generation(run: Run, work: Path) -> tuple[subprocess.Popen, Path]:
    """Generate the synthetic GLaS set in the background while the other phases run."""
    counts, size = ((8, 2, 2), (64, 96)) if run.args.quick else (GLAS_COUNTS, GLAS_SIZE)
    root = work / "glas_synthetic"
    cmd = [sys.executable, str(BENCH_DIR / "gpu_check_bundle.py"), "--generate-glas", str(root),
           "--counts", *map(str, counts), "--image-size", *map(str, size)]
    log = open(work / "glas_generation.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    run.result["bundles"]["glas"] = {
        "bundle": "glas", "status": "pending",
        "data": f"generated, {counts[0]} / {counts[1]} + {counts[2]} images of {size[0]}x{size[1]}",
    }
    return proc, root


def run_bundle_subprocess(run: Run, name: str, spec: dict, work: Path, phase: str) -> None:
    entry = run.result["bundles"][name]
    limit = run.left(phase)
    if limit < run.args.bundle_min_s:
        entry.update(status="skipped", reason=f"budget: {limit:.0f} s left")
        run.save()
        return
    spec["time_limit_s"] = limit
    result_path = work / f"bundle_{name}.json"
    log_path = work / f"bundle_{name}.log"
    entry.update(status="running", time_limit_s=limit)
    run.save()
    cmd = [sys.executable, str(BENCH_DIR / "gpu_check_bundle.py"), "--spec", json.dumps(spec), "--result", str(result_path)]
    try:
        with open(log_path, "w") as log:
            # the runner stops itself in time; the hard kill is a safety net with a margin for its evaluation
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=work, timeout=limit + 30)
        if proc.returncode == 0 and result_path.is_file():
            entry.update(json.loads(result_path.read_text()), status="done")
        else:
            entry.update(status="error", reason=_last_line(log_path))
    except subprocess.TimeoutExpired:
        entry.update(status="timed out", reason=f"killed after {limit + 30:.0f} s")
    entry["log_tail"] = log_path.read_text()[-1500:] if log_path.is_file() else None
    run.save()


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    return lines[-1][:300] if lines else "failed without output"


def phase_bundles(run: Run, work: Path, glas: tuple[subprocess.Popen, Path]) -> None:
    args = run.args
    run.result["bundles_status"]["status"] = "running"
    overlays = ["demo.json"] if args.quick else []
    extra = {"epochs": 1} if args.quick else {}
    proc, glas_root = glas
    try:
        proc.wait(timeout=max(run.left("bundle_glas") - args.bundle_min_s, 1))
    except subprocess.TimeoutExpired:
        proc.kill()
    if (glas_root / "complete").is_file():
        spec = {"bundle": "glas", "overlays": overlays, "overrides": {
            "dataset_dir": str(glas_root), "bundle_root": str(work / "masksup_glas"), "paper_protocol": True,
            "overwrite": True, "seed": 0, **extra}}
        run_bundle_subprocess(run, "glas", spec, work, "bundle_glas")
    else:
        run.result["bundles"]["glas"].update(status="error", reason="synthetic GLaS generation did not finish: "
                                             + _last_line(work / "glas_generation.log"))
        run.save()
    kvasir = run.result["bundles"].setdefault("kvasir", {"bundle": "kvasir", "status": "pending"})
    missing = kvasir_missing(run)
    if missing:
        kvasir.update(status="skipped", reason=missing)
    else:
        overrides = {**kvasir_overrides(run, work / "masksup_kvasir"), "paper_protocol": True, "overwrite": True,
                     "seed": 0, **extra}
        kvasir["data"] = "real subsets (Kvasir-SEG + CVC-ClinicDB), bundle's seeded CVC test split"
        run_bundle_subprocess(run, "kvasir", {"bundle": "kvasir", "overlays": overlays, "overrides": overrides},
                              work, "bundle_kvasir")
    run.result["bundles_status"]["status"] = "done"
    run.save()


# --------------------------------------------------------------------------------------------------- main
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="gpu_check_out", help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--budget-s", type=float, default=None, help="time budget in seconds (default 540; quick 300)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, two steps each, one-epoch demo-sized bundle runs (CI on CPU)")
    parser.add_argument("--kvasir-dir", default=str(ROOT.parent / "shared/data/kvasir_seg/Kvasir-SEG"))
    parser.add_argument("--cvc-dir", default=str(ROOT.parent / "shared/data/cvc_clinicdb/CVC-ClinicDB"))
    parser.add_argument("--pytest-paths", nargs="+", default=["tests"], help="where pytest -m gpu looks")
    parser.add_argument("--batches", type=int, nargs="+", default=None, help="default 8 32 64 (quick: 2)")
    parser.add_argument("--work-dir", default=None, help="bundle outputs and generated data (default: a temp folder)")
    parser.add_argument("--compile-max", type=int, default=None, help="at most this many compiled configurations")
    parser.add_argument("--compile-backend", default=None, help="torch.compile backend (default inductor; quick: eager)")
    parser.add_argument("--compile-estimate-s", type=float, default=None,
                        help="assumed seconds of the first compiled configuration (default 75; quick 20)")
    parser.add_argument("--loader-seconds", type=float, default=None, help="how long the loader is drawn (10; quick 1)")
    parser.add_argument("--bundle-min-s", type=float, default=None,
                        help="a bundle run with less time left is skipped (default 40; quick 5)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak, for a device not in the table")
    parser.add_argument("--skip", nargs="*", default=[], choices=["gpu_tests", "train_step", "masks", "loader",
                                                                   "compile", "bundles"], help="phases to leave out")
    parser.add_argument("--update-docs", action="store_true",
                        help="write the markdown between the gpu-check markers of docs/benchmarks.md")
    parser.add_argument("--from-json", help="render and (with --update-docs) write a saved gpu_check.json; runs nothing")
    args = parser.parse_args(argv)
    quick = args.quick
    # absolute: the bundle runs work in their own folder
    args.kvasir_dir, args.cvc_dir = (str(Path(d).resolve()) for d in (args.kvasir_dir, args.cvc_dir))
    args.budget_s = args.budget_s or (300.0 if quick else 540.0)
    args.batches = args.batches or ([2] if quick else [8, 32, 64])
    args.network, args.size = ("basicunet", 32) if quick else ("levit384", 224)
    args.warmup, args.steps = (1, 2) if quick else (3, 5)
    args.mask_repeats = 3 if quick else 20
    args.threads = 1 if args.device == "cpu" else 0  # CPU: one thread, steady on a shared machine
    args.loader_seconds = args.loader_seconds or (1.0 if quick else 10.0)
    args.compile_max = args.compile_max if args.compile_max is not None else (1 if quick else None)
    args.compile_backend = args.compile_backend or ("eager" if quick else None)
    args.compile_estimate_s = args.compile_estimate_s or (20.0 if quick else 75.0)
    args.bundle_min_s = args.bundle_min_s if args.bundle_min_s is not None else (5.0 if quick else 40.0)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    docs = ROOT / "docs" / "benchmarks.md"
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
        markdown = report.render_markdown(result)
        print(markdown)
        if args.update_docs:
            report.update_docs(docs, markdown)
        return 0

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device is available (use --device cpu, e.g. with --quick)", file=sys.stderr)
        return 2
    # the step, compile and bundle subprocesses import monai_masksup from this checkout
    # (absolute paths: the bundle runs work in their own folder)
    paths = [str(ROOT)] + [str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    run = Run(args)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)
    run.result["work_dir"] = str(work)
    run.result["hardware"] = hardware(args.device)
    run.result["hardware"]["measured_bf16_matmul_tflops"] = measured_bf16_tflops(args.device)
    sec = run.result["train_step"]
    entry, peak = report.dense_bf16_peak(torch.cuda.get_device_name(0)) if args.device == "cuda" else (None, None)
    if args.peak_tflops:
        entry, peak = "--peak-tflops", args.peak_tflops
    sec.update(peak_entry=entry, peak_tflops=peak)
    if peak is None:
        sec["peak_reason"] = "MFU null: " + ("CPU run" if args.device == "cpu" else "device not in the peak table")
    run.save()
    glas = start_glas_generation(run, work) if "bundles" not in args.skip else None

    phases = [
        ("gpu_tests", lambda: phase_gpu_tests(run)),
        ("train_step", lambda: phase_train_step(run)),
        ("masks", lambda: phase_masks(run)),
        ("loader", lambda: phase_loader(run, work)),
        ("compile", lambda: phase_compile(run)),
        ("bundles", lambda: phase_bundles(run, work, glas)),
    ]
    for name, phase in phases:
        section = {"gpu_tests": "gpu_tests", "train_step": "train_step", "masks": "masks", "loader": "loader",
                   "compile": "train_step", "bundles": "bundles_status"}[name]
        if name in args.skip:
            if run.result[section].get("status") == "pending":
                run.result[section].update(status="skipped", reason="--skip")
            continue
        print(f"[gpu_check] {name} ({time.perf_counter() - run.t0:.0f} s)", file=sys.stderr, flush=True)
        try:
            phase()
        except Exception as e:  # noqa: BLE001 - one failed phase must not cost the later ones their figures
            run.result[section].update(status="error", reason=f"{type(e).__name__}: {e}",
                                       traceback=traceback.format_exc()[-2000:])
            run.save()
    run.result["finished"] = True
    run.save()
    markdown = (run.out / "gpu_check.md").read_text()
    print(markdown)
    if args.update_docs:
        report.update_docs(docs, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
