"""Targets, markdown table and docs update of ``benchmarks/gpu_check.py`` (read from its JSON result alone).

Kept apart from the measuring script so that the figures of a finished (or cut-short) GPU run can be rendered
again on any machine: ``python benchmarks/gpu_check.py --from-json gpu_check.json --update-docs``.
"""

from __future__ import annotations

import re
from pathlib import Path

#: dense bf16 tensor-core peak in TFLOP/s by device name, from the vendors' datasheets (the sparse figure
#: halved). The first pattern that matches ``torch.cuda.get_device_name()`` wins, so the longer names come first.
DENSE_BF16_TFLOPS: tuple[tuple[str, str, float], ...] = (
    (r"GH200", "GH200", 989.5),
    (r"H200 NVL", "H200 NVL", 835.5),
    (r"H200", "H200 SXM", 989.5),
    (r"H100 NVL", "H100 NVL", 835.5),
    (r"H100 PCIe", "H100 PCIe", 756.5),
    (r"H100", "H100 SXM", 989.5),
    (r"A100", "A100", 312.0),
    (r"L40S", "L40S", 362.1),
    (r"\bL4\b", "L4", 121.0),
    (r"\bA10\b", "A10", 125.0),
)

DOCS_BEGIN = "<!-- gpu-check:begin -->"
DOCS_END = "<!-- gpu-check:end -->"

TARGETS = {
    "batched_bf16_vs_official": "batched + bf16 AMP step >= 2x the official recipe's images/s at the same batch",
    "mfu": ">= 30 % model FLOP utilisation at the best batch",
    "mask_share": "hole masks <= 1 % of a step",
    "loader": "the bundle's loader keeps up with the step",
    "paper_schedule": "paper-schedule bundle runs finish inside the time budget",
}


def dense_bf16_peak(device_name: str) -> tuple[str | None, float | None]:
    """``(table entry, TFLOP/s)`` for a CUDA device name, or ``(None, None)`` for a device not in the table."""
    for pattern, entry, tflops in DENSE_BF16_TFLOPS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return entry, tflops
    return None, None


def ok_rows(result: dict) -> list[dict]:
    """The step rows of ``result`` that were measured (no error)."""
    return [r for r in result.get("train_step", {}).get("rows", []) if "error" not in r and "step_s" in r]


def _official(rows: list[dict], batch: int) -> dict | None:
    return next((r for r in rows if r["batch_size"] == batch and r.get("official")), None)


def evaluate_targets(result: dict) -> dict[str, dict]:
    """Status (``"met"``, ``"not met"`` or ``"unmeasured"``), value and detail of each target of issue #17."""
    rows = ok_rows(result)
    batches = sorted({r["batch_size"] for r in rows})
    targets: dict[str, dict] = {}

    ratios = {}
    for b in batches:
        official = _official(rows, b)
        ours = [r for r in rows if r["batch_size"] == b and r["mode"] == "batched" and r["precision"] == "bf16"]
        if official and ours:
            best = max(ours, key=lambda r: r["images_per_s"])
            ratios[b] = (best["images_per_s"] / official["images_per_s"], best.get("compile", False))
    if ratios:
        worst = min(v for v, _ in ratios.values())
        detail = ", ".join(f"batch {b}: {v:.2f}x{' (compiled)' if c else ''}" for b, (v, c) in ratios.items())
        targets["batched_bf16_vs_official"] = _target("batched_bf16_vs_official", worst, worst >= 2.0, detail)
    else:
        targets["batched_bf16_vs_official"] = _target("batched_bf16_vs_official", None, None, "no pair measured")

    mfus = [r for r in rows if r.get("mfu") is not None and not r.get("official")]
    if mfus:
        best = max(mfus, key=lambda r: r["mfu"])
        detail = f"batch {best['batch_size']}, {row_label(best)}"
        targets["mfu"] = _target("mfu", best["mfu"], best["mfu"] >= 0.30, detail)
    else:
        reason = result.get("train_step", {}).get("peak_reason") or "no step measured"
        targets["mfu"] = _target("mfu", None, None, reason)

    shares = {}
    for b in batches:
        timed = [r for r in rows if r["batch_size"] == b and r.get("mask_share") is not None]
        if timed:
            fastest = max(timed, key=lambda r: r["images_per_s"])
            shares[b] = fastest["mask_share"]
    if shares:
        worst = max(shares.values())
        detail = "fastest step per batch: " + ", ".join(f"batch {b}: {100 * s:.2f} %" for b, s in shares.items())
        targets["mask_share"] = _target("mask_share", worst, worst <= 0.01, detail)
    else:
        targets["mask_share"] = _target("mask_share", None, None, "no step with mask timing")

    loader = result.get("loader", {})
    if loader.get("images_per_s") and loader.get("step_images_per_s"):
        ratio = loader["images_per_s"] / loader["step_images_per_s"]
        detail = f"loader {loader['images_per_s']:.0f} images/s against {loader['step_label']}"
        targets["loader"] = _target("loader", ratio, ratio >= 1.0, detail)
    else:
        targets["loader"] = _target("loader", None, None, loader.get("reason") or "not measured")

    runs = [b for b in result.get("bundles", {}).values() if b.get("epochs_run")]
    if runs:
        finished = all(b.get("finished_schedule") for b in runs)
        detail = "; ".join(
            f"{b['bundle']}: {b['epochs_run']} of {b['epochs_planned']} epochs"
            + (f", full schedule ~{b['estimated_full_schedule_s']:.0f} s" if b.get("estimated_full_schedule_s") else "")
            for b in runs
        )
        targets["paper_schedule"] = _target("paper_schedule", None, finished, detail)
    else:
        targets["paper_schedule"] = _target("paper_schedule", None, None, "no bundle trained")
    return targets


def _target(name: str, value: float | None, met: bool | None, detail: str) -> dict:
    status = "unmeasured" if met is None else "met" if met else "not met"
    return {"target": TARGETS[name], "value": value, "status": status, "detail": detail}


def row_label(row: dict) -> str:
    """Words for a step row: the official recipe, or mode, precision and whether it was compiled."""
    if row.get("official"):
        return "official recipe (separate, fp32)"
    return f"{row['mode']}, {row['precision']}{', compiled' if row.get('compile') else ''}"


def _num(value, fmt: str = "{:.2f}", none: str = "–") -> str:
    return none if value is None else fmt.format(value)


def _cell(text) -> str:
    """Free text made safe for one markdown table cell."""
    return " ".join(str(text).split()).replace("|", "/")


def _section_note(section: dict) -> str:
    status = section.get("status", "pending")
    reason = section.get("reason")
    return f"*{status}{': ' + _cell(reason) if reason else ''}*"


def render_markdown(result: dict) -> str:
    """The markdown report of a (possibly partial) ``gpu_check.py`` result."""
    hw = result.get("hardware", {})
    lines = [
        f"GPU check of {result.get('started', '?')}: {hw.get('device_name', '?')}"
        f"{' (quick mode: tiny sizes, the figures say nothing about speed)' if result.get('quick') else ''}. "
        f"{hw.get('summary', '')}"
        f"{'; 8192³ bf16 matrix product: {:.0f} TFLOP/s'.format(hw['measured_bf16_matmul_tflops']) if hw.get('measured_bf16_matmul_tflops') else ''}"
        f". Budget {result.get('budget_s', '?')} s, elapsed {_num(result.get('elapsed_s'), '{:.0f}')} s"
        f"{', finished' if result.get('finished') else ', cut short or running'}.",
        "",
        "| target | status | value | detail |",
        "|---|---|---|---|",
    ]
    for name, t in result.get("targets", {}).items():
        value = t["value"]
        shown = "–" if value is None else f"{100 * value:.2f} %" if name in ("mfu", "mask_share") else f"{value:.2f}"
        lines.append(f"| {t['target']} | **{t['status']}** | {shown} | {t['detail']} |")

    tests = result.get("gpu_tests", {})
    lines += ["", f"**Test suite, `gpu` marker** ({_section_note(tests)}): "
              + (f"{tests.get('passed', 0)} passed, {tests.get('failed', 0)} failed, {tests.get('errors', 0)} errors, "
                 f"{tests.get('skipped', 0)} skipped in {_num(tests.get('seconds'), '{:.0f}')} s"
                 if "passed" in tests else "not run")]
    for name in tests.get("failures", [])[:10]:
        lines.append(f"- {name}")

    step = result.get("train_step", {})
    lines += [
        "",
        f"**MaskSup training step** ({_section_note(step)}): {step.get('network', '?')} at "
        f"{step.get('size', '?')}², Adam, fixed in-memory batch, median of {step.get('steps', '?')} steps after "
        f"{step.get('warmup', '?')} warm-up; MFU = 6 × forward FLOPs / step time / "
        f"{_num(step.get('peak_tflops'), '{:.0f}')} TFLOP/s ({step.get('peak_entry') or step.get('peak_reason', '')}).",
        "",
        "| batch | step | precision | compile | ms / step | images/s | × official | peak MiB | MFU | masks % of step | warm-up s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = step.get("rows", [])
    for r in rows:
        if "error" in r or "step_s" not in r:
            lines.append(
                f"| {r['batch_size']} | {row_label(r)} | {r['precision']} | {'yes' if r.get('compile') else 'no'} | "
                f"{_cell(r.get('error') or r.get('skipped', '?'))} |||||||"
            )
            continue
        official = _official(ok_rows(result), r["batch_size"])
        ratio = r["images_per_s"] / official["images_per_s"] if official else None
        lines.append(
            f"| {r['batch_size']} | {'official recipe' if r.get('official') else r['mode']} | {r['precision']} | "
            f"{'yes' if r.get('compile') else 'no'} | {1000 * r['step_s']:.1f} | {r['images_per_s']:.1f} | "
            f"{_num(ratio)} | {_num(r.get('peak_mem_mb'), '{:.0f}')} | {_num(r.get('mfu'), '{:.1%}')} | "
            f"{_num(r.get('mask_share'), '{:.2%}')} | {_num(r.get('warmup_s'), '{:.1f}')} |"
        )

    masks = result.get("masks", {})
    lines += [
        "",
        f"**Hole masks** ({_section_note(masks)}; OpenCV: {masks.get('opencv_note', 'not measured')}):",
        "",
        "| batch | device \"high\" masks/s | device raw masks/s | CPU OpenCV loop masks/s | raw device / OpenCV |",
        "|---|---|---|---|---|",
    ]
    for m in masks.get("rows", []):
        cv = m.get("opencv_masks_per_s")
        raw = m.get("raw_masks_per_s")
        lines.append(
            f"| {m['batch_size']} | {_num(m.get('high_masks_per_s'), '{:.0f}')} | {_num(raw, '{:.0f}')} | "
            f"{_num(cv, '{:.0f}')} | {_num(raw / cv if raw and cv else None)} |"
        )

    loader = result.get("loader", {})
    lines += ["", f"**Data loading** ({_section_note(loader)}): " + (
        f"{loader.get('bundle')} bundle's training loader, batch {loader.get('batch_size')}, "
        f"{loader.get('num_workers')} workers: {_num(loader.get('images_per_s'), '{:.0f}')} images/s over "
        f"{loader.get('epochs')} epochs (first batch of an epoch after {_num(loader.get('first_batch_s'), '{:.2f}')} s; "
        f"caching {_num(loader.get('cache_s'), '{:.1f}')} s) against {loader.get('step_label', '?')}."
        if loader.get("images_per_s") else "not measured")]

    bundles = result.get("bundles", {})
    lines += [
        "",
        f"**Bundles, paper protocol** ({_section_note(result.get('bundles_status', {}))}):",
        "",
        "| bundle | data | train / test images | epochs run / schedule | s / epoch | full schedule (est.) | "
        "data wait % | test IoU | test Dice | evaluation s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for b in bundles.values():
        if not b.get("epochs_run"):
            lines.append(f"| {b.get('bundle')} | {b.get('data', '')} | {b.get('status', '')}: {_cell(b.get('reason', ''))} |||||||")
            continue
        lines.append(
            f"| {b['bundle']} | {b.get('data', '')} | {b.get('n_train')} / {b.get('n_test')} | "
            f"{b['epochs_run']} / {b['epochs_planned']} | {_num(b.get('epoch_s_mean'), '{:.1f}')} | "
            f"{_num(b.get('estimated_full_schedule_s'), '{:.0f} s')} | {_num(b.get('data_wait_share'), '{:.1%}')} | "
            f"{_num(b.get('test_iou'), '{:.3f}')} | {_num(b.get('test_dice'), '{:.3f}')} | "
            f"{_cell(b['eval_error']) if b.get('eval_error') else _num(b.get('eval_s'), '{:.0f}')} |"
        )
    return "\n".join(lines) + "\n"


def update_docs(docs: Path, markdown: str) -> None:
    """Replace the text between the gpu-check marker comments of ``docs`` with ``markdown``.

    Raises:
        ValueError: when ``docs`` lacks the begin or end marker (or has them in the wrong order).
    """
    text = docs.read_text()
    begin, end = text.find(DOCS_BEGIN), text.find(DOCS_END)
    if begin < 0 or end < begin:
        raise ValueError(f"{docs}: needs the lines {DOCS_BEGIN} and {DOCS_END} (in that order) around the GPU table.")
    docs.write_text(text[: begin + len(DOCS_BEGIN)] + "\n" + markdown + text[end:])
