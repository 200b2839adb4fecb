"""Helpers of the MONAI Label app tests: the app's modules, the label environment, and the ``monailabel`` marker."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import PROJECT_ROOT

APP_DIR = PROJECT_ROOT / "apps" / "monailabel"

#: the python of the MONAI Label environment built from apps/monailabel/requirements-label.txt
LABEL_PYTHON_VARIABLE = "MONAI_MASKSUP_LABEL_PYTHON"
DEFAULT_LABEL_PYTHON = "/work/label-venv/bin/python"


def pytest_configure(config: pytest.Config) -> None:
    # registered here rather than in pyproject.toml: the app and its tests own this marker
    config.addinivalue_line(
        "markers",
        "monailabel: needs the MONAI Label environment of apps/monailabel/requirements-label.txt "
        f"(its python in ${LABEL_PYTHON_VARIABLE}, default {DEFAULT_LABEL_PYTHON})",
    )


def app_module(name: str) -> ModuleType:
    """
    Import ``apps/monailabel/lib/<name>.py`` by its path, under a name that cannot clash with other ``lib``
    packages. Only the app's modules that import neither MONAI Label nor each other load this way.
    """
    path = APP_DIR / "lib" / f"{name}.py"
    module_name = f"monai_masksup_label_app_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def label_python() -> str:
    """The MONAI Label environment's python, or skip the calling test saying how to build it."""
    python = os.environ.get(LABEL_PYTHON_VARIABLE, DEFAULT_LABEL_PYTHON)
    how = (
        f"build it with: python3.11 -m venv /work/label-venv && /work/label-venv/bin/pip install -r "
        "apps/monailabel/requirements-label.txt && /work/label-venv/bin/pip install --no-deps monailabel==0.8.5 "
        f"pydicom-seg==0.4.1, or point ${LABEL_PYTHON_VARIABLE} at its python"
    )
    if not Path(python).is_file():
        pytest.skip(f"no MONAI Label environment: {python} does not exist; {how}")
    found = subprocess.run(
        [python, "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('monailabel') is None)"],
        capture_output=True,
        timeout=60,
    )
    if found.returncode != 0:
        pytest.skip(f"no MONAI Label environment: {python} cannot import monailabel; {how}")
    return python
