"""Shared test fixtures: locations of ``../shared`` material and skip rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = PROJECT_ROOT.parent / "shared"
REFERENCE_DIR = SHARED_DIR / "reference"
DATA_DIR = SHARED_DIR / "data"


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Keep CPU tests on few threads so the 2-core CI machine is not oversubscribed."""
    torch.set_num_threads(2)
    yield


def load_reference(name: str) -> dict:
    """Load ``../shared/reference/<name>`` or skip the calling test with the reason."""
    path = REFERENCE_DIR / name
    if not path.is_file():
        pytest.skip(f"reference vectors {path} are absent (../shared/reference is not beside the project)")
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def shared_data_dir(*parts: str) -> Path:
    """Return a folder under ``../shared/data`` or skip the calling test with the reason."""
    path = DATA_DIR.joinpath(*parts)
    if not path.is_dir():
        pytest.skip(f"real data subset {path} is absent (../shared/data is not beside the project)")
    return path


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
