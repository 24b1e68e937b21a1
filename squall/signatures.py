"""Checking at boot that what an app declared can be called the way Squall will call it.

A validator that is a string, or a join hook that takes one argument where Squall passes two,
would otherwise boot and fail on every request with Python's own ``TypeError`` text, which
reads like the client's fault. :func:`call_problem` says why a callable does not fit, in a
sentence the loader puts after the file's name.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

__all__ = ["call_problem"]


def call_problem(fn: Any, params: Sequence[str]) -> str | None:
    """Why ``fn(*params)`` cannot work, or None when it can (or when Python cannot tell, as for
    some builtins such as ``int``, which have no signature to read).

    >>> call_problem(lambda connection: None, ("connection", "room"))
    'must take (connection, room), but takes (connection)'
    """
    if not callable(fn):
        return f"must be a function taking ({', '.join(params)}), got {type(fn).__name__} {fn!r}"
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(*params)
    except TypeError:
        takes = str(signature).partition(" ->")[0].strip("()")
        return f"must take ({', '.join(params)}), but takes ({takes})"
    return None
