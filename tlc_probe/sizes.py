"""Sizes in pixels: the one place that turns a user's int or (h, w) into a checked pair."""

from __future__ import annotations

import numbers
from typing import Any


def as_int(v: Any, name: str, minimum: int | None = None) -> int:
    """``v`` as a Python int: an int-like number (Python or NumPy integer, 0-d integer
    tensor). Strings, floats and booleans, and a value below ``minimum``, raise
    ``ValueError`` naming ``name``."""
    if hasattr(v, "dim") and hasattr(v, "item") and v.dim() == 0 and not v.is_floating_point():
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {v!r} ({type(v).__name__})")
    v = int(v)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return v


def as_pair(v: Any, name: str, minimum: int | None = 1) -> tuple[int, int]:
    """``v`` (an int-like number or a pair of them) as ``(h, w)`` ints, each checked by
    :func:`as_int` against ``minimum``. Strings are refused (not split into characters)."""
    if isinstance(v, str | bytes):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    if isinstance(v, tuple | list):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
        return as_int(v[0], name, minimum), as_int(v[1], name, minimum)
    n = as_int(v, name, minimum)
    return n, n
