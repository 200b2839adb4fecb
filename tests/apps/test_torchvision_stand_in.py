"""The stand-in for torchvision.utils that lets MONAI Label's BundleInferTask import without torchvision."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.apps.conftest import app_module

stand_in = app_module("torchvision_stand_in")

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed: the stand-in is never used"
)


def test_stand_in_imports_inside_the_block_and_is_gone_after():
    with stand_in.torchvision_utils_stand_in() as used:
        from torchvision.utils import make_grid, save_image

        assert used
    assert "torchvision" not in sys.modules and "torchvision.utils" not in sys.modules
    with pytest.raises(ModuleNotFoundError, match="torchvision.utils.make_grid is not installed.*stand-in"):
        make_grid([])
    with pytest.raises(ModuleNotFoundError, match="save_image"):
        save_image([], "x.png")
    with pytest.raises(ImportError):
        import torchvision  # noqa: F401
