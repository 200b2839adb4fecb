"""Boolean switches of bundle configs, read the same way from JSON and from the command line."""

from __future__ import annotations

from typing import Any

__all__ = ["parse_flag"]

_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


def parse_flag(value: Any, name: str = "flag") -> bool:
    """
    Read a boolean switch given in a config or on the command line.

    ``python -m monai.bundle run ... --amp false`` passes the *string* ``"false"`` (only ``True`` / ``False``
    become booleans), and ``bool("false")`` is ``True``; so strings are read by their words.

    Args:
        value: a bool, a number, or one of the words true/false, yes/no, 1/0 (any case).
        name: the setting's name, for the error message.

    Returns:
        the switch as a bool.

    Raises:
        ValueError: for a string that is not one of true/false, yes/no, 1/0.
    """
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ValueError(f"`{name}` must be true or false, got {value!r}.")
    return bool(value)
