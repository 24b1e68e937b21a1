"""What every test tier that runs real servers shares: ports, config layering, log checks and
polling for state that has no event to await.

It imports nothing of Squall's: the tiers talk to ``server.py`` from the outside. Each tier's
``support.py`` imports from here (pytest puts ``tests/`` on the path for the tier packages).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

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


class ServerLog:
    """What a tier's server class gets from its log file (``log_path``: both streams)."""

    name: str
    log_path: Path

    def log_text(self, start: int = 0) -> str:
        """The server's log from byte ``start`` on."""
        with self.log_path.open("rb") as log:
            log.seek(start)
            return log.read().decode(errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


#: The marker a tier registers (``pytest_configure``) for ``fail_on_stray_errors``.
SERVER_ERRORS_MARKER = (
    "server_errors(*texts): the test makes a server log ERROR records mentioning these texts"
)


@contextlib.contextmanager
def fail_on_stray_errors(
    request: pytest.FixtureRequest, servers: Callable[[], Iterable[ServerLog]]
) -> Iterator[None]:
    """Fail the test if a server logged an ERROR or a traceback it did not expect while it ran
    (noise fails: an error nobody asserts is a bug nobody sees); expected ones are declared
    with ``@pytest.mark.server_errors(text)``. ``servers()`` lists the servers to look at,
    before and after the test."""
    allowed = tuple(t for mark in request.node.iter_markers("server_errors") for t in mark.args)
    offsets = {server: server.log_size() for server in servers()}
    yield
    stray = {
        server.name: found
        for server in servers()
        if (found := error_records(server.log_text(offsets.get(server, 0)), allowed))
    }
    assert not stray, f"unexpected server errors: {stray}"


def node_command() -> list[str]:
    """``node`` with what it needs for a global WebSocket, or skip: Node 22 has one, Node 20
    (from 20.10) has it behind a flag, older ones have none to inject."""
    if shutil.which("node") is None:
        pytest.skip("needs node")
    version = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)
    major, minor = (int(part) for part in version.stdout.lstrip("v").split(".")[:2])
    if (major, minor) < (20, 10):
        pytest.skip(f"needs Node >= 20.10, found {version.stdout.strip()}")
    return ["node", "--experimental-websocket"] if major < 22 else ["node"]
