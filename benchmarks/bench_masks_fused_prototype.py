"""
Prototype, not part of the package: how fast would raw hole masks be with the row-span rasterisation as one
compiled CPU loop instead of ~20 eager tensor passes? It was evidence for a decision on issue #3 (the CPU target
at batches of 16), which the eager generator now meets by the median (docs/benchmarks.md); it stays as an
independent re-implementation of the row spans that the tests compare the generator against.

The parameter draws and the capsule segments stay ``HoleMaskGenerator``'s own (torch); only
``capsule_row_spans`` + ``render_span_union`` are replaced by a C++ loop (``torch.utils.cpp_extension.load_inline``)
that takes every capsule row by row with the same stationary-point formula and fills the covered pixels of
the float32 masks directly (no difference array, no running sum). The script checks that the masks agree
with the torch path pixel for pixel (up to float rounding of boundary pixels) before timing anything.

Needs a C++ compiler and ninja (the first run compiles for about a minute). Usage::

    python benchmarks/bench_masks_fused_prototype.py --repeats 200 --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from monai_masksup.transforms import HoleMaskGenerator

_CPP_SOURCE = r"""
#include <torch/extension.h>
#include <algorithm>
#include <cmath>

// Union of 2D capsules (all points within radius of segment p0-p1; radius < 0 = unused) as float32 0/1
// masks (B, H, W). Rows run along the last axis, as in monai_masksup.transforms.capsule_spans.
torch::Tensor capsule_union_2d(torch::Tensor p0, torch::Tensor p1, torch::Tensor radius, torch::Tensor batch,
                               int64_t n_batch, int64_t height, int64_t width) {
    auto p0c = p0.contiguous(), p1c = p1.contiguous(), rc = radius.contiguous(), bc = batch.contiguous();
    const float* a = p0c.data_ptr<float>();
    const float* b = p1c.data_ptr<float>();
    const float* rad = rc.data_ptr<float>();
    const int64_t* bat = bc.data_ptr<int64_t>();
    auto out = torch::zeros({n_batch, height, width}, torch::kFloat32);
    float* mask = out.data_ptr<float>();
    const int64_t n = radius.size(0);
    for (int64_t i = 0; i < n; ++i) {
        const float r = rad[i];
        if (r < 0) continue;
        const float y0 = a[2 * i], x0 = a[2 * i + 1], y1 = b[2 * i], x1 = b[2 * i + 1];
        const float dy = y1 - y0, dx = x1 - x0;
        const float lead_abs = std::fabs(dy);
        const float lead_s = std::max(lead_abs, 1e-6f);
        const float inv_lead = 1.0f / lead_s;
        const float length = std::max(std::sqrt(lead_abs * lead_abs + dx * dx), 1e-6f);
        const float slope_c = dx / (length * lead_s);
        const float r2 = r * r;
        const bool parallel = lead_abs < 1e-6f;
        const float unbounded = parallel ? 1e12f : 0.0f;
        const float lead = parallel ? 0.0f : lead_abs;
        const float sgn_dx = dx > 0 ? 1.0f : (dx < 0 ? -1.0f : 0.0f);
        const float sign = dy < 0 ? -1.0f : 1.0f;
        const float q = unbounded + r * inv_lead;
        const float c = unbounded * sgn_dx + r * slope_c;
        const float row_lo = std::max(std::ceil(std::min(y0, y1) - r), 0.0f);
        const float row_hi = std::min(std::floor(std::max(y0, y1) + r), float(height - 1));
        const float base = row_lo - y0;
        float* sample = mask + bat[i] * height * width;
        for (int64_t k = 0; row_lo + k <= row_hi; ++k) {
            const float e_par = (float(k) + base) * sign;
            const float p = e_par * inv_lead;
            const float t_min = std::max(p - q, 0.0f), t_max = std::min(p + q, 1.0f);
            const float t_lo = std::min(std::max(p - c, t_min), t_max);
            const float t_hi = std::min(std::max(p + c, t_min), t_max);
            const float u_lo = e_par - t_lo * lead, u_hi = e_par - t_hi * lead;
            const float w_lo = std::sqrt(std::max(r2 - u_lo * u_lo, 1e-12f));
            const float w_hi = std::sqrt(std::max(r2 - u_hi * u_hi, 1e-12f));
            const float lo = (x0 + t_lo * dx) - w_lo, hi = (x0 + t_hi * dx) + w_hi;
            const int64_t first = int64_t(std::ceil(std::min(std::max(lo, 0.0f), float(width))));
            const int64_t last = int64_t(std::floor(std::min(std::max(hi, -1.0f), float(width - 1))));
            if (last >= first) {
                float* row = sample + int64_t(row_lo + k) * width;
                std::fill(row + first, row + last + 1, 1.0f);
            }
        }
    }
    return out;
}
"""


def load_kernel(native: bool = False):
    """Compile (first call) and load the prototype; ``native`` adds ``-march=native`` (not portable: a wheel or
    a JIT build for other machines would use the baseline flags)."""
    from torch.utils.cpp_extension import load_inline

    return load_inline(
        name="masksup_capsule_union_prototype" + ("_native" if native else ""),
        cpp_sources=_CPP_SOURCE,
        functions=["capsule_union_2d"],
        extra_cflags=["-O3", "-ffp-contract=off"] + (["-march=native"] if native else []),
        verbose=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--native", action="store_true", help="compile with -march=native")
    parser.add_argument("--check-batches", type=int, default=20, help="seeded batches compared with the generator")
    parser.add_argument("--check-only", action="store_true", help="compare the masks, time nothing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    b, spatial = args.batch_size, (args.size, args.size)

    t0 = time.perf_counter()
    kernel = load_kernel(args.native)
    print(f"compiled / loaded the prototype kernel in {time.perf_counter() - t0:.1f} s")

    generator = HoleMaskGenerator(None)

    def fused(gen: torch.Generator) -> torch.Tensor:
        with torch.inference_mode():
            draws = generator._draw(b, spatial, gen, torch.device("cpu"))
            seg = generator._segments(draws, spatial)
            masks = kernel.capsule_union_2d(seg["p0"], seg["p1"], seg["radius"], seg["batch"], b, *spatial)
        return masks.clone().unsqueeze(1)  # out of inference mode, as the generator returns it

    # same draws, same capsules: the masks must agree (boundary pixels may round differently)
    disagree = total = 0
    for seed in range(args.check_batches):
        ours = generator(b, spatial, generator=torch.Generator().manual_seed(seed))
        proto = fused(torch.Generator().manual_seed(seed))
        disagree += int((ours != proto).sum())
        total += ours.numel()
    print(f"pixels that differ from HoleMaskGenerator ({args.check_batches} batches): {disagree} of {total}")
    if disagree > 1e-4 * total:
        raise SystemExit("the prototype does not draw the same masks; timings would mean nothing")
    if args.check_only:
        return

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_masks import opencv_batch_fn, time_interleaved

    seeds = {name: torch.Generator().manual_seed(0) for name in ("torch", "fused")}
    fns = {
        "opencv loop (CPU)": opencv_batch_fn(b, args.size),
        "HoleMaskGenerator(None)": lambda: generator(b, spatial, generator=seeds["torch"]),
        "prototype: same draws + C++ union": lambda: fused(seeds["fused"]),
    }
    times = time_interleaved(fns, args.repeats)
    base_wall, base_fast = times["opencv loop (CPU)"][:2]
    flags = "-O3 -march=native" if args.native else "-O3"
    print(f"\nbatches of {b} at {args.size} x {args.size}, {args.threads} thread(s), {args.repeats} rounds, {flags}")
    print(f"{'method':40s} {'ms/batch':>9s} {'fastest':>8s} {'ratio to OpenCV (median / fastest)':>36s}")
    for name, (wall, fastest, _, _) in times.items():
        print(f"{name:40s} {wall * 1e3:9.2f} {fastest * 1e3:8.2f} {base_wall / wall:17.2f}x {base_fast / fastest:8.2f}x")


if __name__ == "__main__":
    main()
