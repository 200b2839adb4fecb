"""Helpers of the bundle tests: bundle locations, in-process and subprocess bundle runs, tiny-run overrides."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.conftest import PROJECT_ROOT

BUNDLES_DIR = PROJECT_ROOT / "bundles"
GLAS_BUNDLE = BUNDLES_DIR / "masksup_glas"
KVASIR_BUNDLE = BUNDLES_DIR / "masksup_kvasir"

#: overrides that make a bundle run take seconds on a CPU: 64x64 inputs, the demo's tiny BasicUNet.
TINY_RUN = {"image_size": [64, 64], "num_workers": 0, "batch_size": 4, "val_batch_size": 4}


def configs(bundle: Path, *names: str) -> list[str]:
    """Paths of config files of ``bundle``."""
    return [str(bundle / "configs" / name) for name in names]


def bundle_run(bundle: Path, config_names: Sequence[str], **overrides) -> None:
    """Run a bundle workflow in this process, as ``python -m monai.bundle run`` does."""
    from monai.bundle import run

    run(
        config_file=configs(bundle, *config_names),
        meta_file=str(bundle / "configs" / "metadata.json"),
        logging_file=str(bundle / "configs" / "logging.conf"),
        **overrides,
    )


def cli_args(overrides: dict) -> list[str]:
    """``--key value`` command-line arguments of ``monai.bundle run`` for ``overrides``."""
    args: list[str] = []
    for key, value in overrides.items():
        args += [f"--{key}", str(value).replace(" ", "") if isinstance(value, (list, tuple)) else str(value)]
    return args


def subprocess_env() -> dict[str, str]:
    """Environment of bundle subprocesses: the project importable, few threads on the shared CPU."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PROJECT_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def bundle_cli(bundle: Path, config_names: Sequence[str], overrides: dict, log: Path, timeout: float = 300):
    """Start ``python -m monai.bundle run`` for ``bundle`` in a subprocess writing to ``log``; return the Popen."""
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(configs(bundle, *config_names))]
    cmd += ["--meta_file", str(bundle / "configs" / "metadata.json")]
    cmd += ["--logging_file", str(bundle / "configs" / "logging.conf")] + cli_args(overrides)
    handle = open(log, "w")
    return subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=subprocess_env(), cwd=str(bundle))


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception it was raised from."""
    chain = []
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain
