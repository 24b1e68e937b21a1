"""What the hostile tier shares: a real server process, a raw HTTP client and a raw WebSocket
peer that can break every rule a polite client keeps.

Nothing here imports the server or the other test tiers: a server is ``server.py`` in a
subprocess on a free port with its own extra YAML; clients are bare sockets, so a test can send
unmasked frames, lie about lengths, stop reading, or vanish mid-request. Every wait has a
timeout; nothing sleeps to synchronise (where time itself is the behaviour, a test says so).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml
from testkit import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    ServerLog,
    deep_merge,
    eventually,
    frame_bytes,
    free_port,
)

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

#: Scale every timeout on a slow machine (as websockets' WEBSOCKETS_TESTS_TIMEOUT_FACTOR).
FACTOR = float(os.environ.get("SQUALL_TESTS_TIMEOUT_FACTOR", "1"))
TIMEOUT = 5.0 * FACTOR
BOOT_TIMEOUT = 20.0 * FACTOR

WELCOME = "Welcome, hostile client"

#: Options every hostile server gets: the test actions and middleware of tests/hostile/actions
#: and the rooms they use.
BASE_OPTIONS: dict[str, Any] = {
    "general": {
        "welcomeMessage": WELCOME,
        "paths": {"actions": ["actions", "tests/hostile/actions"]},
        "startingChatRooms": {
            "defaultRoom": {},
            "hostile-join-explodes": {},
            "hostile-say": {},
            "flood": {},
        },
    },
}

DEFLATE_TAIL = b"\x00\x00\xff\xff"


# --- the server process ---------------------------------------------------------------------


class Server(ServerLog):
    """``server.py --env test --port N --config <name>.yaml`` as a subprocess."""

    #: Every server this session started, for the stray-error check after each test.
    started: ClassVar[list[Server]] = []

    def __init__(
        self,
        name: str,
        workdir: Path,
        options: dict[str, Any] | None = None,
        client_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self.name = name
        self.options = deep_merge(BASE_OPTIONS, options or {})
        self.port = free_port()
        self.config_path = workdir / f"{name}.yaml"
        self.log_path = workdir / f"{name}.log"
        self.config_path.write_text(yaml.safe_dump(self.options))
        self.client_ssl = client_ssl
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def secure(self) -> bool:
        return self.client_ssl is not None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Server:
        env = {k: v for k, v in os.environ.items() if k not in ("PORT", "SQUALL_ENV")}
        env.pop("SQUALL_REDIS_URL", None)
        command = [
            sys.executable,
            "server.py",
            "--env",
            "test",
            "--port",
            str(self.port),
            "--config",
            str(self.config_path),
        ]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log, env=env)
        Server.started.append(self)
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server {self.name} exited at boot:\n{self.log_tail()}")
            if self._answers():
                return self
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=0.1)  # poll interval while booting; exits are caught above
        self.kill()
        raise RuntimeError(f"server {self.name} not ready in {BOOT_TIMEOUT}s:\n{self.log_tail()}")

    def _answers(self) -> bool:
        request = b"GET /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        try:
            with contextlib.ExitStack() as stack:
                sock: Any = stack.enter_context(
                    socket.create_connection(("127.0.0.1", self.port), timeout=1)
                )
                if self.client_ssl is not None:
                    sock = stack.enter_context(
                        self.client_ssl.wrap_socket(sock, server_hostname="localhost")
                    )
                sock.sendall(request)
                return sock.recv(12).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def kill(self) -> None:
        """Stop the process whatever state it is in; never leaves it running."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=TIMEOUT * 3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss(self) -> int:
        """The server's resident set size in bytes, from /proc/<pid>/status."""
        text = Path(f"/proc/{self.pid}/status").read_text()
        kilobytes = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
        assert kilobytes, text
        return int(kilobytes.group(1)) * 1024

    def logged(self, pattern: str, start: int = 0) -> bool:
        """Whether a log line from byte ``start`` on matches the regex ``pattern`` (no wait)."""
        return re.search(pattern, self.log_text(start)) is not None

    async def wait_log(self, pattern: str, start: int = 0, timeout: float = TIMEOUT) -> str:
        """The first log line from byte ``start`` on that matches the regex ``pattern``."""
        regex = re.compile(pattern)

        def found() -> str | None:
            return next((ln for ln in self.log_text(start).splitlines() if regex.search(ln)), None)

        return await eventually(found, lambda line: line is not None, timeout)


# --- HTTP -----------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)


def parse_response(raw: bytes) -> Response | None:
    """The first response in ``raw`` (None when no complete head arrived)."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/"):
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:] if line]
    response = Response(status, headers, b"")  # type: ignore[arg-type]
    length = response.header("Content-Length")
    response.body = rest[: int(length)] if length is not None else rest
    return response


async def open_stream(
    server: Server, *, rcvbuf: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP (or TLS, for a secure server) connection to ``server``."""
    sock = socket.socket()
    sock.setblocking(False)
    if rcvbuf is not None:  # a small window, so a client that stops reading backs up quickly
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", server.port)), TIMEOUT)
    except BaseException:
        sock.close()
        raise
    if server.client_ssl is None:
        return await asyncio.open_connection(sock=sock, limit=2**24)
    return await asyncio.wait_for(
        asyncio.open_connection(
            sock=sock, ssl=server.client_ssl, server_hostname="localhost", limit=2**24
        ),
        TIMEOUT,
    )


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
    length = response.header("Content-Length")
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


async def status(server: Server) -> dict[str, Any]:
    """The ``status`` action's reply, over HTTP."""
    response = await http(server, "GET", "/api/status")
    assert response.status == 200, response
    return response.json()


async def settled(server: Server, web_socket: int, timeout: float = TIMEOUT) -> dict[str, Any]:
    """Wait until ``status`` shows ``web_socket`` open sockets and no action in flight but the
    ``status`` call itself."""

    def accept(reply: dict[str, Any]) -> bool:
        sockets = reply["connections"].get("webSocket", 0)
        return sockets == web_socket and reply["pendingActions"] == 1

    return await eventually(lambda: status(server), accept, timeout)


# --- WebSocket ------------------------------------------------------------------------------


class UpgradeRefused(Exception):
    def __init__(self, response: Response | None, raw: bytes) -> None:
        super().__init__(f"upgrade refused: {raw[:300]!r}")
        self.response = response
        self.raw = raw


def deflate_message(data: bytes) -> bytes:
    """``data`` compressed as one permessage-deflate message (RFC 7692 7.2.1), no context."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4] if out.endswith(DEFLATE_TAIL) else out


Frame = Any  # a decoded JSON value, or bytes for a binary frame


@dataclass
class Peer:
    """A WebSocket client on a bare stream that records every frame it receives.

    It speaks RFC 6455 well enough to be polite (answers pings and close frames) and exposes
    everything needed to be rude: raw bytes, unmasked or reserved-bit frames, fragments,
    hand-built compressed frames, pausing its reads, resetting the TCP connection.
    """

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    response: Response
    compressed: bool = False
    inbox: list[Frame] = field(default_factory=list)
    pongs: list[bytes] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str | None = None
    sent: int = 0
    _next_id: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _closed: asyncio.Event = field(default_factory=asyncio.Event)
    _reader_task: asyncio.Task[None] | None = None
    _close_sent: bool = False

    opened: ClassVar[list[Peer]] = []

    @classmethod
    async def open(
        cls,
        server: Server,
        *,
        path: str = "/primus",
        query: str = "",
        headers: dict[str, str] | None = None,
        compress: bool = False,
        rcvbuf: int | None = None,
        welcome: bool = True,
        timeout: float = TIMEOUT,
    ) -> Peer:
        """Upgrade a fresh connection; raises :class:`UpgradeRefused` on any status but 101."""
        reader, writer = await open_stream(server, rcvbuf=rcvbuf)
        key = base64.b64encode(os.urandom(16)).decode()
        fields = {
            "Host": f"127.0.0.1:{server.port}",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
        }
        if compress:
            fields["Sec-WebSocket-Extensions"] = (
                "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
            )
        fields.update(headers or {})  # a test's header replaces the default of that name
        lines = [f"GET {path}{query} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in fields.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            async with asyncio.timeout(timeout):
                head = await reader.readuntil(b"\r\n\r\n")
                response = parse_response(head)
                assert response is not None, head
                if response.status != 101:
                    length = int(response.header("Content-Length") or 0)
                    body = await reader.readexactly(length) if length else b""
                    response.body = body
                    raise UpgradeRefused(response, head + body)
        except BaseException:
            writer.transport.abort()
            raise
        extensions = response.header("Sec-WebSocket-Extensions") or ""
        peer = cls(reader, writer, response, compressed="permessage-deflate" in extensions)
        peer._reader_task = asyncio.create_task(peer._read())
        Peer.opened.append(peer)
        if welcome:
            frame = await peer.next(lambda f: isinstance(f, dict) and f.get("context") == "api")
            assert frame == {"context": "api", "welcome": WELCOME}, frame
        return peer

    # -- receiving ------------------------------------------------------------------------

    async def _read(self) -> None:
        fragments: list[bytes] = []
        fragment_rsv1 = False
        try:
            while True:
                first, second = await self.reader.readexactly(2)
                size = second & 0x7F
                if size == 126:
                    (size,) = struct.unpack("!H", await self.reader.readexactly(2))
                elif size == 127:
                    (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
                assert not second & 0x80, "the server masked a frame"
                payload = await self.reader.readexactly(size)
                opcode = first & 0x0F
                if opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                    if opcode != OP_CONT:
                        fragment_rsv1 = bool(first & 0x40)
                        message_opcode = opcode
                    fragments.append(payload)
                    if not first & 0x80:
                        continue
                    data, fragments = b"".join(fragments), []
                    if fragment_rsv1:
                        data = zlib.decompressobj(-15).decompress(data + DEFLATE_TAIL)
                    self.inbox.append(
                        json.loads(data) if message_opcode == OP_TEXT else bytes(data)
                    )
                elif opcode == OP_PING:
                    self._send_quietly(frame_bytes(OP_PONG, payload))
                elif opcode == OP_PONG:
                    self.pongs.append(payload)
                elif opcode == OP_CLOSE:
                    self.close_code = struct.unpack("!H", payload[:2])[0] if payload else 1005
                    self.close_reason = payload[2:].decode("utf-8", "replace")
                    if not self._close_sent:
                        self._send_quietly(frame_bytes(OP_CLOSE, payload[:2]))
                    self.writer.close()
                    return
                self._changed.set()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError):
            if self.close_code is None:
                self.close_code = 1006  # the TCP connection ended without a close frame
        finally:
            self._closed.set()
            self._changed.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def next(self, match: Callable[[Frame], bool] = lambda f: True, timeout: float = TIMEOUT):
        """Take the first frame (received or to come) that ``match`` accepts."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for index, frame in enumerate(self.inbox):
                        if match(frame):
                            return self.inbox.pop(index)
                    if self._closed.is_set():
                        raise AssertionError(
                            f"closed ({self.close_code} {self.close_reason!r}) with no matching "
                            f"frame; inbox: {str(self.inbox)[:500]}"
                        )
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"no matching frame in {timeout}s; inbox: {str(self.inbox)[:500]}"
            ) from None

    async def reply(self, message_id: Any, timeout: float = TIMEOUT) -> dict[str, Any]:
        return await self.next(lambda f: is_reply(f) and f.get("messageId") == message_id, timeout)

    async def error_push(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        return await self.next(lambda f: isinstance(f, dict) and f.get("context") == "error")

    async def wait_closed(self, timeout: float = TIMEOUT) -> tuple[int | None, str | None]:
        try:
            async with asyncio.timeout(timeout):
                await self._closed.wait()
        except TimeoutError:
            raise AssertionError(f"socket still open after {timeout}s") from None
        return self.close_code, self.close_reason

    # -- sending --------------------------------------------------------------------------

    def _send_quietly(self, data: bytes) -> None:
        if not self.writer.is_closing():
            with contextlib.suppress(ConnectionError, RuntimeError):
                self.writer.write(data)

    async def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (a frame, part of one, or garbage)."""
        with contextlib.suppress(ConnectionError):
            self.writer.write(data)
            await self.writer.drain()

    async def send_frame(self, opcode: int, payload: bytes, **options: Any) -> None:
        if opcode in (OP_TEXT, OP_BINARY):
            self.sent += 1
        await self.send_raw(frame_bytes(opcode, payload, **options))

    async def send_text(self, text: str) -> None:
        await self.send_frame(OP_TEXT, text.encode())

    async def send_json(self, frame: Any) -> None:
        await self.send_text(json.dumps(frame, ensure_ascii=False))

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def request(self, event: str, timeout: float = TIMEOUT, **fields: Any) -> dict:
        message_id = self.new_id()
        await self.send_json({"event": event, "messageId": message_id, **fields})
        return await self.reply(message_id, timeout)

    async def action(self, name: str, /, timeout: float = TIMEOUT, **params: Any) -> dict:
        return await self.request("action", timeout=timeout, params={"action": name, **params})

    # -- leaving --------------------------------------------------------------------------

    def pause_reading(self) -> None:
        self.writer.transport.pause_reading()

    def resume_reading(self) -> None:
        self.writer.transport.resume_reading()

    def reset(self) -> None:
        """Vanish abruptly: a TCP RST (SO_LINGER 0), no close frame."""
        sock = self.writer.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def close(self, code: int = 1000) -> None:
        """The polite way out: a close frame, then wait for the server's."""
        if not self.closed:
            self._close_sent = True
            self._send_quietly(frame_bytes(OP_CLOSE, struct.pack("!H", code)))
            with contextlib.suppress(AssertionError):
                await self.wait_closed()
        self.writer.transport.abort()
        if self._reader_task is not None:
            await asyncio.gather(self._reader_task, return_exceptions=True)


def is_reply(frame: Frame) -> bool:
    return isinstance(frame, dict) and frame.get("context") == "response"


def action_frame(message_id: Any, name: str, /, **params: Any) -> dict[str, Any]:
    return {"event": "action", "messageId": message_id, "params": {"action": name, **params}}


def failed(message: str, message_id: Any, count: int) -> dict[str, Any]:
    """The failure reply to a verb (PROTOCOL.md §2.2)."""
    return {
        "status": message,
        "error": message,
        "context": "response",
        "messageId": message_id,
        "messageCount": count,
    }


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
