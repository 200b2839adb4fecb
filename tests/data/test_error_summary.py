from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monai_masksup.data import DataFileError, DatasetLayoutError, data_error_summary, find_data_error
from monai_masksup.data import error_summary
from monai_masksup.data.error_summary import data_error_excepthook, install_data_error_summary


def _wrapped(error: BaseException) -> RuntimeError:
    """``error`` wrapped as MONAI wraps it: transform, then component instantiation."""
    try:
        try:
            try:
                raise error
            except Exception as e:
                raise RuntimeError("applying transform <EnsureRGBd>") from e
        except Exception as e:
            raise RuntimeError("Failed to instantiate component 'monai.data.dataset.CacheDataset'") from e
    except RuntimeError as outer:
        return outer


def test_data_error_is_found_under_monai_wrappers():
    error = DataFileError("image 'a.jpg' arrived with 1 channel(s)")
    assert find_data_error(_wrapped(error)) is error


def test_data_error_is_found_as_context_without_from():
    try:
        try:
            raise DatasetLayoutError("folder '/data/images' does not exist.")
        except DatasetLayoutError:
            raise RuntimeError("Failed to evaluate ConfigExpression")  # noqa: B904
    except RuntimeError as outer:
        assert isinstance(find_data_error(outer), DatasetLayoutError)


def test_other_errors_get_no_summary():
    assert find_data_error(_wrapped(ValueError("x"))) is None
    assert data_error_summary(_wrapped(KeyError("x"))) is None


def test_summary_is_one_line_with_type_and_message():
    error = DataFileError("JPEG file 'x/1.jpg' is damaged at byte 9:\nstray marker.  Replace it.")
    assert data_error_summary(_wrapped(error)) == (
        "monai_masksup: DataFileError: JPEG file 'x/1.jpg' is damaged at byte 9: stray marker. Replace it."
    )


def test_hook_prints_the_previous_output_then_the_summary_last(capsys):
    calls = []
    error = _wrapped(DataFileError("file 'gone.png' does not exist."))
    data_error_excepthook(RuntimeError, error, None, previous=lambda *args: calls.append(args))
    assert calls == [(RuntimeError, error, None)]
    last = [line for line in capsys.readouterr().err.splitlines() if line.strip()][-1]
    assert last == "monai_masksup: DataFileError: file 'gone.png' does not exist."


def test_install_chains_to_the_previous_hook_once(monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "excepthook", lambda *args: seen.append(args[0]))
    install_data_error_summary()
    hook = sys.excepthook
    install_data_error_summary()
    assert sys.excepthook is hook
    sys.excepthook(ValueError, ValueError("x"), None)
    assert seen == [ValueError]


def test_importing_the_package_leaves_the_excepthook_unchanged():
    # a fresh interpreter: this one imported the package long ago
    code = (
        "import sys\n"
        "before = sys.excepthook\n"
        "import monai_masksup.data\n"
        "assert sys.excepthook is before, sys.excepthook\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_hook_waits_for_pool_workers_only_for_a_data_error(monkeypatch):
    waits = []
    monkeypatch.setattr(error_summary, "wait_for_pool_workers", lambda: waits.append(1) or [])
    data_error_excepthook(ValueError, ValueError("unrelated"), None, previous=lambda *args: None)
    assert waits == []
    error = _wrapped(DataFileError("file 'gone.png' does not exist."))
    data_error_excepthook(RuntimeError, error, None, previous=lambda *args: None)
    assert waits == [1]
