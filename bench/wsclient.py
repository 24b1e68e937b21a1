"""A minimal client WebSocket (RFC 6455) on a bare asyncio Protocol, for load generation.

A general-purpose client (``websockets``) spends more CPU per frame than the servers we measure
would; on a 2-core machine that CPU comes out of the server's share. This one does the least a
client can while still looking like a browser to the server: the upgrade request carries a
browser's headers (Origin, User-Agent, a permessage-deflate offer...), and every client frame is
masked with a fresh random key (``os.urandom(4)``), as browsers must (RFC 6455 5.3), so the server
pays the unmasking it pays in production. The XOR is websockets' C ``apply_mask`` when installed.
Frames are handed to ``on_frame`` as raw bytes; JSON decoding is the caller's choice. The client
reads uncompressed frames only: a server that accepts the deflate offer fails the connect.

Two dialects share it: ``plain`` (Squall, the floor: server heartbeats are protocol-level pings,
answered here with pongs) and ``primus`` (ActionHero: the server sends the text frame
``"primus::ping::<ts>"`` and expects ``"primus::pong::<ts>"`` back).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
from collections.abc import Callable
from typing import Any

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets is optional for the generator: the same XOR, in Python

    def apply_mask(data: bytes, mask: bytes) -> bytes:
        """``data`` XOR the repeated 4-byte ``mask``."""
        if not data:
            return data
        key = (mask * (len(data) // 4 + 1))[: len(data)]
        number = int.from_bytes(data, "big") ^ int.from_bytes(key, "big")
        return number.to_bytes(len(data), "big")


try:
    import orjson

    loads = orjson.loads

    def dumps(obj: Any) -> bytes:
        """JSON-encode to bytes (orjson when installed)."""
        return orjson.dumps(obj)

except ImportError:  # orjson is optional
    loads = json.loads

    def dumps(obj: Any) -> bytes:
        """JSON-encode to bytes (orjson when installed)."""
        return json.dumps(obj, separators=(",", ":")).encode()


DIALECTS = ("plain", "primus")
_PRIMUS_PING = b'"primus::ping::'
_PRIMUS_PONG = b'"primus::pong::'
#: What Chrome sends on ``new WebSocket(url)`` besides Host, Origin, the key and the version.
BROWSER_UPGRADE_HEADERS = (
    "Pragma: no-cache",
    "Cache-Control: no-cache",
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Accept-Encoding: gzip, deflate, br, zstd",
    "Accept-Language: en-US,en;q=0.9",
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
)
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class WSClient(asyncio.Protocol):
    """One client connection. Await ``opened`` (and ``welcome``) before sending."""

    def __init__(self, host: str, port: int, path: str, dialect: str) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Connection: Upgrade",
            "Upgrade: websocket",
            f"Origin: http://{host}:{port}",
            "Sec-WebSocket-Version: 13",
            f"Sec-WebSocket-Key: {key}",
            *BROWSER_UPGRADE_HEADERS,
        ]
        self._request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self._primus = dialect == "primus"
        self._buf = b""
        self._fragments: list[bytes] | None = None
        self._upgraded = False
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.welcome: asyncio.Future[bytes] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        for fut in (self.opened, self.welcome):  # failures are read by connect(), or not at all
            fut.add_done_callback(_consume_exception)
        self.on_frame: Callable[[bytes], None] = self._await_welcome
        self.pings_answered = 0

    # -- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the upgrade request at once."""
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail pending handshakes; mark the connection closed for drivers."""
        for fut in (self.opened, self.welcome):
            if not fut.done():
                fut.set_exception(ConnectionError("connection closed during handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        """Parse the 101 response once, then every complete frame in the buffer."""
        if self._buf:
            data = self._buf + data
        if not self._upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self._buf = data
                return
            if not data.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(ConnectionError(data[:120].decode("latin1")))
                self.transport.close()
                return
            if b"permessage-deflate" in data[:end].lower():
                self.opened.set_exception(
                    ConnectionError("the server negotiated permessage-deflate: not supported")
                )
                self.transport.close()
                return
            self._upgraded = True
            self.opened.set_result(None)
            data = data[end + 4 :]
        pos, size = 0, len(data)
        while size - pos >= 2:
            length = data[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                head = 10
            end = pos + head + length
            if end > size:
                break
            self._frame(data[pos], data[pos + head : end])
            pos = end
        self._buf = data[pos:] if pos < size else b""

    # -- frames
    def _frame(self, first: int, payload: bytes) -> None:
        opcode, fin = first & 0x0F, first & 0x80
        if opcode in (OP_TEXT, OP_BINARY):
            if fin:
                self._message(payload)
            else:
                self._fragments = [payload]
        elif opcode == OP_CONT and self._fragments is not None:
            self._fragments.append(payload)
            if fin:
                payload, self._fragments = b"".join(self._fragments), None
                self._message(payload)
        elif opcode == OP_PING:
            self._write(0x80 | OP_PONG, payload)
            self.pings_answered += 1
        elif opcode == OP_CLOSE:
            self.transport.close()

    def _message(self, payload: bytes) -> None:
        if self._primus and payload.startswith(_PRIMUS_PING):
            self.send(_PRIMUS_PONG + payload[len(_PRIMUS_PING) :])
            self.pings_answered += 1
            return
        self.on_frame(payload)

    def _await_welcome(self, payload: bytes) -> None:
        if not self.welcome.done():
            self.welcome.set_result(payload)

    def _write(self, first: int, payload: bytes) -> None:
        self.transport.write(client_frame(first, payload))

    # -- public
    def send(self, payload: bytes) -> None:
        """Send one text frame (``payload`` is already-encoded JSON)."""
        self._write(0x80 | OP_TEXT, payload)

    def send_binary(self, payload: bytes) -> None:
        """Send one binary frame."""
        self._write(0x80 | OP_BINARY, payload)

    @property
    def is_closed(self) -> bool:
        """True once the TCP connection is gone."""
        return self.closed.done()

    def close(self) -> None:
        """Send a 1000 close frame and drop the TCP connection without waiting for the echo."""
        if self.transport is not None and not self.transport.is_closing():
            self._write(0x80 | OP_CLOSE, b"\x03\xe8")
            self.transport.close()


def client_frame(first: int, payload: bytes) -> bytes:
    """One client frame (``first``: FIN and opcode), masked with a fresh random key."""
    length = len(payload)
    if length < 126:
        head = bytes((first, 0x80 | length))
    elif length < 65536:
        head = struct.pack("!BBH", first, 0xFE, length)
    else:
        head = struct.pack("!BBQ", first, 0xFF, length)
    mask = os.urandom(4)
    return head + mask + apply_mask(payload, mask)


def _consume_exception(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()


async def connect(host: str, port: int, path: str, dialect: str, timeout: float) -> WSClient:
    """Open one connection, complete the upgrade and wait for the welcome push.

    Waiting for the welcome means the server has finished its own per-connection setup, so a
    connect rate measured with it counts connections the server can actually use.
    """
    loop = asyncio.get_running_loop()
    _, client = await asyncio.wait_for(
        loop.create_connection(lambda: WSClient(host, port, path, dialect), host, port), timeout
    )
    try:
        await asyncio.wait_for(client.opened, timeout)
        await asyncio.wait_for(client.welcome, timeout)
    except BaseException:
        client.close()
        raise
    return client


async def request(client: WSClient, frame: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Send a verb and wait for the reply with the same ``messageId`` (setup use, not hot path)."""
    fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    message_id = frame["messageId"]
    previous = client.on_frame

    def on_frame(payload: bytes) -> None:
        try:
            reply = loads(payload)
        except ValueError:
            return
        if isinstance(reply, dict) and reply.get("messageId") == message_id and not fut.done():
            fut.set_result(reply)

    client.on_frame = on_frame
    try:
        client.send(dumps(frame))
        return await asyncio.wait_for(fut, timeout)
    finally:
        client.on_frame = previous
