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
#: where apps/monailabel/run_integration_tests.sh builds it (git-ignored)
DEFAULT_LABEL_PYTHON = str(PROJECT_ROOT / ".label-venv" / "bin" / "python")


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
    """
    The MONAI Label environment's python: ``$MONAI_MASKSUP_LABEL_PYTHON``, else the project's ``.label-venv``.

    Without the variable, a missing environment skips the calling test, saying how to build it (the main suite
    runs before CI builds it). With the variable set, CI (``apps/monailabel/run_integration_tests.sh``) means
    the tests to run: a missing or broken environment fails them.
    """
    chosen = os.environ.get(LABEL_PYTHON_VARIABLE)
    python = chosen or DEFAULT_LABEL_PYTHON
    how = (
        "build it with `bash apps/monailabel/run_integration_tests.sh` (which then runs these tests), or point "
        f"${LABEL_PYTHON_VARIABLE} at the python of an environment built from apps/monailabel/requirements-label.txt"
    )
    give_up = pytest.fail if chosen else pytest.skip
    if not Path(python).is_file():
        give_up(f"no MONAI Label environment: {python} does not exist; {how}")
    found = subprocess.run(
        [python, "-c", "import monailabel.interfaces.app, monai_masksup"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    if found.returncode != 0:
        error = (found.stderr.strip().splitlines() or ["no message"])[-1]
        give_up(f"MONAI Label environment {python} cannot import monailabel.interfaces.app: {error}; {how}")
    return python
