"""What only the hostile tier needs: the options of its servers (the test actions and
middleware of tests/hostile/actions and the rooms they use), requests written byte by byte (a
path goes on the wire exactly as given, a request may never end), hand-compressed frames, and
the check that a server still serves everyone else after an attack.

The server process, the rude WebSocket peer (:class:`testkit.Peer`) and the rest are
tests/testkit.py's. Every wait has a timeout; nothing sleeps to synchronise (where time itself
is the behaviour, a test says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import time
import zlib
from typing import Any

import testkit
from testkit import (
    DEFLATE_TAIL,
    TIMEOUT,
    Peer,
    Response,
    Server,
    eventually,
    open_stream,
    parse_response,
)

WELCOME = "Welcome, hostile client"

#: Options every hostile server gets: the test actions and middleware of tests/hostile/actions
#: and the rooms they use.
BASE_OPTIONS: dict[str, Any] = {
    "general": {
        "welcomeMessage": WELCOME,
        "paths": {"actions": ["actions", "tests/probes", "tests/hostile/actions"]},
        "startingChatRooms": {
            "defaultRoom": {},
            "hostile-join-explodes": {},
            "hostile-say": {},
            "flood": {},
        },
    },
}

#: ``running_server(tmp_path_factory, name, options, **settings)``: BASE_OPTIONS under ``options``
running_server = functools.partial(testkit.running_server, base=BASE_OPTIONS)


# --- HTTP written by hand ------------------------------------------------------------------------


async def raw_http(server: Server, request: bytes, timeout: float = TIMEOUT) -> bytes:
    """Send ``request`` bytes as they are; everything the server sent until it closed.

    Raises AssertionError when the server neither answers nor closes within ``timeout`` (a hang).
    """
    reader, writer = await open_stream(server)
    try:
        with contextlib.suppress(ConnectionError):
            writer.write(request)
            await writer.drain()
        received = bytearray()
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        chunk = await reader.read(65536)
                    except (ConnectionError, ssl.SSLError):
                        break
                    if not chunk:
                        break
                    received += chunk
                    response = parse_response(bytes(received))
                    if response is not None and _complete(response, bytes(received)):
                        break
        except TimeoutError:
            got = bytes(received)[:200]
            raise AssertionError(
                f"the server neither answered nor closed in {timeout}s; got {got!r}"
            ) from None
        return bytes(received)
    finally:
        writer.transport.abort()


def _complete(response: Response, raw: bytes) -> bool:
    length = response.headers.get("Content-Length")
    if length is None:
        return response.status in (101, 204, 304)
    head = raw.partition(b"\r\n\r\n")[0]
    return len(raw) >= len(head) + 4 + int(length)


async def http(
    server: Server,
    method: str,
    path: str,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> Response:
    """One request on a fresh connection; ``path`` goes on the wire exactly as given."""
    payload = body.encode() if isinstance(body, str) else (body or b"")
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if payload or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(payload)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + payload
    raw = await raw_http(server, request, timeout)
    response = parse_response(raw)
    assert response is not None, f"{method} {path[:80]}: no HTTP response, got {raw[:200]!r}"
    return response


async def dropped_when_idle(reader: asyncio.StreamReader, idle: float) -> bytes:
    """Wait for the server to drop a connection that sends nothing more; what it sent first.

    Raises AssertionError when the connection is still open 3 s past ``idle`` (the server's
    ``idleConnectionTimeout``), or was dropped well before it.
    """
    started = time.monotonic()
    data = b""
    try:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            data = await asyncio.wait_for(reader.read(4096), idle + 3)
    except TimeoutError:
        raise AssertionError(
            f"still open {idle + 3} s later; the idle timeout is {idle} s"
        ) from None
    lasted = time.monotonic() - started
    assert lasted >= idle * 0.8, f"dropped after {lasted:.2f} s; the idle timeout is {idle} s"
    return data


async def settled(server: Server, web_socket: int, timeout: float = TIMEOUT) -> dict[str, Any]:
    """Wait until ``status`` shows ``web_socket`` open sockets and no action in flight but the
    ``status`` call itself."""

    def accept(reply: dict[str, Any]) -> bool:
        sockets = reply["connections"].get("webSocket", 0)
        return sockets == web_socket and reply["pendingActions"] == 1

    return await eventually(server.status, accept, timeout)


def deflate_message(data: bytes) -> bytes:
    """``data`` compressed as one permessage-deflate message (RFC 7692 7.2.1), no context."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4] if out.endswith(DEFLATE_TAIL) else out


async def assert_still_serving(server: Server) -> None:
    """A fresh client gets its welcome and an action reply, and HTTP answers: the server lives."""
    assert server.alive(), f"server {server.name} died:\n{server.log_tail()}"
    peer = await Peer.open(server)
    try:
        reply = await peer.action("randomNumber")
        assert "error" not in reply, reply
        assert isinstance(reply["randomNumber"], float), reply
    finally:
        await peer.close()
    response = await http(server, "GET", "/api/randomNumber")
    assert response.status == 200, response
    assert "error" not in response.json()
