"""A last line naming the file when a data error ends a program, after the traceback that buries it.

Nothing is installed at import: a program (the bundles do, first thing in ``initialize``) calls
:func:`install_data_error_summary` to opt in, so importing ``monai_masksup`` leaves ``sys.excepthook`` alone.
"""

from __future__ import annotations

import sys
from types import TracebackType

from .errors import DataFileError, DatasetLayoutError
from .pool_worker_shutdown import wait_for_pool_workers

__all__ = ["find_data_error", "data_error_summary", "data_error_excepthook", "install_data_error_summary"]

_PREFIX = "monai_masksup: "


def find_data_error(exc: BaseException | None) -> DataFileError | DatasetLayoutError | None:
    """The first :class:`DataFileError` or :class:`DatasetLayoutError` in an exception's chain.

    MONAI wraps an error raised while a bundle config is evaluated in ``RuntimeError("Failed to
    instantiate component ...")`` or ``RuntimeError("Failed to evaluate ConfigExpression ...")``, and
    a transform's error in ``RuntimeError("applying transform ...")``; the data error is their
    ``__cause__`` (or ``__context__``).

    Args:
        exc: the exception that ended the program.

    Returns:
        the data error, or ``None`` when the chain holds none.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (DataFileError, DatasetLayoutError)):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def data_error_summary(exc: BaseException | None) -> str | None:
    """One line for the end of the output: ``monai_masksup: <the data error's message>``.

    The message of every data error names the file or folder, the problem and the fix.

    Args:
        exc: the exception that ended the program.

    Returns:
        the line, or ``None`` when no data error is in the chain.
    """
    error = find_data_error(exc)
    if error is None:
        return None
    message = " ".join(str(error).split())  # one line, whatever the message's own line breaks
    return f"{_PREFIX}{type(error).__name__}: {message}"


def data_error_excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None, previous=None
) -> None:
    """Print the traceback as the previous hook does, then the data error's summary as the last line.

    When the exception holds a data error, first waits (at most 10 s) for ``ThreadPool`` workers, e.g.
    those of ``CacheDataset``, to finish the item they hold (:func:`wait_for_pool_workers`): otherwise the
    interpreter may abort while they run and the process ends with status 134 instead of 1. Any other
    exception goes straight to the previous hook, without the wait.

    Args:
        exc_type: the exception's type.
        exc: the exception.
        tb: its traceback.
        previous: the hook to chain to (``sys.__excepthook__`` when ``None``).
    """
    summary = data_error_summary(exc)
    if summary is not None:
        wait_for_pool_workers()
    (previous or sys.__excepthook__)(exc_type, exc, tb)
    if summary is not None:
        print(f"\n{summary}", file=sys.stderr, flush=True)


def install_data_error_summary() -> None:
    """Install :func:`data_error_excepthook` as ``sys.excepthook``, chained to the hook in place; idempotent."""
    current = sys.excepthook
    if getattr(current, "_monai_masksup_data_errors", False):
        return

    def hook(exc_type, exc, tb):
        data_error_excepthook(exc_type, exc, tb, previous=current)

    hook._monai_masksup_data_errors = True  # type: ignore[attr-defined]
    sys.excepthook = hook
