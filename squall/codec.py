"""JSON in and out, through orjson when it is installed (several times faster) else the stdlib.

Both paths give the same wire text: compact separators, UTF-8, non-ASCII kept as is. Values JSON
cannot hold (sets, datetimes, objects) are turned into strings rather than failing the reply.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["DecodeError", "dumps", "loads"]

try:
    import orjson
except ImportError:  # pragma: no cover - exercised on machines without the fast extra
    orjson = None


class DecodeError(ValueError):
    """The text is not JSON, or is nested too deeply to read."""


def _fallback(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


if orjson is not None:
    _OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY

    def dumps(value: Any) -> bytes:
        """Encode ``value`` as compact UTF-8 JSON bytes."""
        try:
            return orjson.dumps(value, default=_fallback, option=_OPTIONS)
        except TypeError:
            # orjson refuses integers beyond 64 bits; the stdlib writes them.
            return _stdlib_dumps(value)

    def loads(data: bytes | str) -> Any:
        """Decode JSON text; raises :class:`DecodeError` with the reason."""
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            if "integer" in str(exc) or "number" in str(exc):
                return _stdlib_loads(data)
            raise DecodeError(str(exc)) from None

else:

    def dumps(value: Any) -> bytes:
        """Encode ``value`` as compact UTF-8 JSON bytes."""
        return _stdlib_dumps(value)

    def loads(data: bytes | str) -> Any:
        """Decode JSON text; raises :class:`DecodeError` with the reason."""
        return _stdlib_loads(data)


def _stdlib_dumps(value: Any) -> bytes:
    try:
        text = _STDLIB.encode(value)
    except ValueError as exc:
        if "float" not in str(exc):  # a circular reference: nothing to mend
            raise
        text = _STDLIB.encode(_finite(value))  # NaN or an infinity: orjson writes null
    return text.encode("utf-8", "replace")


_STDLIB = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_fallback
)


def _finite(value: Any) -> Any:
    """``value`` with every NaN and infinity replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _stdlib_loads(data: bytes | str) -> Any:
    try:
        return json.loads(data)
    except RecursionError:
        raise DecodeError("nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(str(exc)) from None
