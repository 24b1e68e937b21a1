"""What every test tier that runs real servers shares: ports, config layering, log checks and
polling for state that has no event to await.

It imports nothing of Squall's: the tiers talk to ``server.py`` from the outside. Each tier's
``support.py`` imports from here (pytest puts ``tests/`` on the path for the tier packages).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

#: Scale every timeout on a slow machine (as websockets' WEBSOCKETS_TESTS_TIMEOUT_FACTOR).
FACTOR = float(os.environ.get("SQUALL_TESTS_TIMEOUT_FACTOR", "1"))
TIMEOUT = 5.0 * FACTOR


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Maps merge key by key, anything else replaces (the config loader's rule)."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


async def eventually(
    fetch: Callable[[], Any], accept: Callable[[Any], bool], timeout: float = TIMEOUT
) -> Any:
    """Poll ``fetch()`` (sync or async) until ``accept`` takes its value, for server state that
    has no event to await (the server's view after a peer vanished). Returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if inspect.isawaitable(value):
            value = await value
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not accepted after {timeout}s; last value: {value!r}")
        await asyncio.sleep(0.05)  # poll interval: this state has no event to await


#: The first line of a log record: ``2026-01-01 12:00:00,000 LEVEL name: ...``.
_RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d[ T]", re.MULTILINE)


def error_records(log: str, allowed: tuple[str, ...] = ()) -> list[str]:
    """Log records at ERROR or above, or holding a traceback, that mention none of ``allowed``.

    A record starts at a timestamped line; the lines after it (a traceback) belong to it."""
    starts = [m.start() for m in _RECORD_START.finditer(log)]
    bounds = zip([0, *starts], [*starts, len(log)], strict=True)
    records = [log[a:b] for a, b in bounds if log[a:b].strip()]
    bad = [r for r in records if " ERROR " in r or " CRITICAL " in r or "Traceback" in r]
    return [r for r in bad if not any(text in r for text in allowed)]


#: RFC 6455 opcodes, for frames built by hand.
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def mask_payload(mask: bytes, payload: bytes) -> bytes:
    if not payload:
        return payload
    key = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(
        len(payload), "big"
    )


def frame_bytes(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    length: int | None = None,
) -> bytes:
    """One client frame, masked with a random key as a browser masks it (or not); ``length``
    may lie about the payload, ``rsv`` sets the reserved bits."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    size = len(payload) if length is None else length
    mask_bit = 0x80 if masked else 0
    if size < 126:
        header = struct.pack("!BB", first, mask_bit | size)
    elif size < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, size)
    if not masked:
        return header + payload
    mask = os.urandom(4)
    return header + mask + mask_payload(mask, payload)
