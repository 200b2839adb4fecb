"""Regenerate the figures that the READMEs publish by running the commands they come from.

Every published figure sits between markers, ``<!--fig:NAME-->value<!--/fig-->`` (invisible once the Markdown
is rendered). This script runs ``python -m monai_masksup.demo`` for each bundle, exactly as the READMEs show it
(default settings, a fresh output folder), reads the figures from what the command prints, and rewrites every
marked value in the files listed in :data:`FILES`. A marker whose name it does not produce is an error, so no
figure can stay stale unnoticed.

Examples::

    python benchmarks/readme_figures.py            # run the demos, rewrite the figures
    python benchmarks/readme_figures.py --check    # only list the markers and fail on unknown names
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the files whose marked figures this script owns.
FILES = (
    ROOT / "README.md",
    ROOT / "bundles" / "masksup_glas" / "docs" / "README.md",
    ROOT / "bundles" / "masksup_kvasir" / "docs" / "README.md",
    ROOT / "docs" / "benchmarks.md",
)
MARKER = re.compile(r"<!--fig:(?P<name>[a-z0-9_]+)-->(?P<value>.*?)<!--/fig-->", re.DOTALL)
_DONE = re.compile(r"^\[demo\] done in (?P<seconds>\d+) s$", re.MULTILINE)
_SCORES = re.compile(r"test IoU / Dice\s*: (?P<iou>[0-9.]+) / (?P<dice>[0-9.]+)")
_HOLES = re.compile(r"holes\s+(?P<bin>\S+): IoU (?P<iou>[0-9.]+)")


def parse_demo_output(stdout: str) -> dict[str, str]:
    """The figures of one ``python -m monai_masksup.demo`` printout.

    Args:
        stdout: what the command printed.

    Returns:
        ``{"seconds", "iou", "dice", "iou_clean", "iou_50_60"}`` as the printed strings.

    Raises:
        ValueError: when a figure is missing from the printout.
    """
    done, scores = _DONE.search(stdout), _SCORES.search(stdout)
    holes = {m["bin"]: m["iou"] for m in _HOLES.finditer(stdout)}
    if done is None or scores is None or "clean" not in holes or "50-60%" not in holes:
        raise ValueError(f"the demo's printout lacks its summary lines:\n{stdout[-2000:]}")
    return {
        "seconds": done["seconds"],
        "iou": scores["iou"],
        "dice": scores["dice"],
        "iou_clean": holes["clean"],
        "iou_50_60": holes["50-60%"],
    }


def rewrite_figures(text: str, figures: Mapping[str, str], source: str = "<text>") -> str:
    """Replace the value of every ``<!--fig:NAME-->...<!--/fig-->`` marker in ``text``.

    Args:
        text: Markdown holding markers.
        figures: ``{NAME: value}``.
        source: the file name, for the error message.

    Returns:
        ``text`` with every marked value replaced.

    Raises:
        KeyError: naming the file and the marker when ``figures`` has no value for it.
    """
    unknown = sorted({m["name"] for m in MARKER.finditer(text)} - set(figures))
    if unknown:
        raise KeyError(f"{source}: no figure is produced for marker(s) {unknown}")
    return MARKER.sub(lambda m: f"<!--fig:{m['name']}-->{figures[m['name']]}<!--/fig-->", text)


def marker_names(paths: Iterable[Path]) -> dict[str, list[str]]:
    """``{file: [marker names]}`` of the files that hold markers."""
    found = {}
    for path in paths:
        names = [m["name"] for m in MARKER.finditer(path.read_text(encoding="utf-8"))]
        if names:
            found[str(path)] = names
    return found


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_demo(bundle: str, output_dir: Path) -> dict[str, str]:
    """Run ``python -m monai_masksup.demo --bundle <bundle>`` with its defaults and return its figures.

    Besides the printed figures: ``cpu_seconds``, the CPU time (user + system) of the command, which a shared
    machine's other tenants disturb far less than the wall time it prints.
    """
    cmd = [sys.executable, "-m", "monai_masksup.demo", "--bundle", bundle, "--output_dir", str(output_dir)]
    print("+", " ".join(cmd), flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cpu_before = _children_cpu_seconds()
    proc = subprocess.run(cmd, cwd=str(output_dir.parent), env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}")
    return {**parse_demo_output(proc.stdout), "cpu_seconds": f"{_children_cpu_seconds() - cpu_before:.0f}"}


def machine_description() -> str:
    """Where and when the figures were measured, for the benchmark page."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import torch

    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    device = "CUDA" if torch.cuda.is_available() else "no GPU"
    return (
        f"{datetime.date.today().isoformat()}, {platform.machine()} with {cores} CPU cores, {device}, "
        f"torch {torch.__version__}{load}"
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="list the markers only; run nothing, rewrite nothing")
    args = parser.parse_args(argv)
    if args.check:
        for path, names in marker_names(FILES).items():
            print(f"{path}: {', '.join(names)}")
        return 0
    figures = {"measured_on": machine_description()}
    with tempfile.TemporaryDirectory(prefix="readme_figures_") as tmp:
        for bundle in ("glas", "kvasir"):
            out = run_demo(bundle, Path(tmp) / f"{bundle}_demo")
            figures.update({f"{bundle}_demo_{key}": value for key, value in out.items()})
            print(f"{bundle}: {out}", flush=True)
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        new = rewrite_figures(text, figures, source=str(path))
        if new != text:
            path.write_text(new, encoding="utf-8")
            print(f"rewrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
