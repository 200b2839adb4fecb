"""A stand-in for ``torchvision.utils``, installed only where torchvision is missing.

MONAI Label 0.8.5 imports ``make_grid`` and ``save_image`` from ``torchvision.utils`` at the top of
``monailabel.transform.post``, which ``BundleInferTask`` imports for ``Restored``. Neither function is called on
the app's code path (they draw TensorBoard grids for DeepEdit). torchvision exists on these machines only as the
5.5 GB CUDA pairing ``torch==2.14.1 torchvision==0.29.1``; the stand-in lets the lean CPU environment of
``requirements-label.txt`` use MONAI Label's own ``BundleInferTask`` instead of a copy of it.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["torchvision_utils_stand_in"]


def _not_available(name: str):
    def missing(*args, **kwargs):
        raise ModuleNotFoundError(
            f"torchvision.utils.{name} is not installed: the MONAI Label app's environment has a stand-in for "
            "torchvision (apps/monailabel/lib/torchvision_stand_in.py); install torchvision for this feature"
        )

    missing.__name__ = name
    return missing


@contextmanager
def torchvision_utils_stand_in() -> Iterator[bool]:
    """
    Within the ``with`` block, ``from torchvision.utils import make_grid, save_image`` succeeds even when
    torchvision is not installed; import the MONAI Label modules that need it there.

    A real torchvision is always preferred: the stand-in goes into ``sys.modules`` only when importing
    ``torchvision.utils`` fails, and it is taken out again when the block ends, so that MONAI's
    ``optional_import("torchvision")`` elsewhere still sees that torchvision is missing. Its functions raise
    ``ModuleNotFoundError`` naming this module if anything calls them.

    Yields:
        whether the stand-in is in use (``False``: the real ``torchvision.utils`` imported).
    """
    try:
        importlib.import_module("torchvision.utils")
    except ImportError:
        pass
    else:
        yield False
        return
    package = types.ModuleType("torchvision")
    package.__path__ = []  # a package, so that `torchvision.utils` resolves as its sub-module
    utils = types.ModuleType("torchvision.utils")
    utils.make_grid = _not_available("make_grid")
    utils.save_image = _not_available("save_image")
    package.utils = utils
    sys.modules["torchvision"] = package
    sys.modules["torchvision.utils"] = utils
    try:
        yield True
    finally:
        for name, module in (("torchvision.utils", utils), ("torchvision", package)):
            if sys.modules.get(name) is module:
                del sys.modules[name]
