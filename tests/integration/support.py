"""What the integration tests share: a real server process, a recording WebSocket peer, plain
HTTP, and value matchers for exact reply comparisons.

Everything here talks to ``server.py`` from the outside (PROTOCOL.md is the only contract): a
server is a subprocess on a free port with its own extra YAML, a client is a real socket.
Every wait has a timeout; nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any, ClassVar

import yaml
from testkit import ServerLog, deep_merge, free_port
from testkit import eventually as eventually  # used by the tier's tests
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PUBLIC = HERE / "public"

#: Scale every timeout on a slow machine (like websockets' WEBSOCKETS_TESTS_TIMEOUT_FACTOR).
FACTOR = float(os.environ.get("SQUALL_TESTS_TIMEOUT_FACTOR", "1"))
TIMEOUT = 5.0 * FACTOR
BOOT_TIMEOUT = 20.0 * FACTOR

WELCOME = "Welcome to the integration suite"
SERVER_NAME = "squall-integration"
API_VERSION = "2.5.0"

#: Options every test server gets: our test actions and middleware, our own public/ folder
#: (so file contents are known), a distinctive welcome, and the rooms the tests use.
BASE_OPTIONS: dict[str, Any] = {
    "general": {
        "serverName": SERVER_NAME,
        "apiVersion": API_VERSION,
        "welcomeMessage": WELCOME,
        "paths": {
            "actions": ["actions", "tests/integration/actions"],
            "public": "tests/integration/public",
        },
        "startingChatRooms": {
            "defaultRoom": {},
            "mw-blocked": {},
            "mw-sticky": {},
            "mw-chat": {},
            "mw-order": {},
            "notify-room": {},
        },
    },
}


# --- the server process ---------------------------------------------------------------------


class Server(ServerLog):
    """``server.py --port N --env test --config <name>.yaml`` as a subprocess.

    ``event_log`` is a file our test middleware appends to (``leave <id> <room>`` on every leave
    from a ``notify-*`` room, ``destroy <id>`` per connection destroy hook), so tests see
    middleware run even after the server has exited.
    """

    #: Every server this session started, for the stray-error check after each test.
    started: ClassVar[list[Server]] = []

    def __init__(
        self,
        name: str,
        workdir: Path,
        options: dict[str, Any] | None = None,
        port_from_env: bool = False,
        loop: str = "auto",
    ) -> None:
        self.name = name
        self.port_from_env = port_from_env
        self.loop = loop
        merged = deep_merge(BASE_OPTIONS, options or {})
        servers = merged.get("servers", {})
        #: where the socket and the actions answer, following the options given
        self.ws_path = servers.get("websocket", {}).get("server", {}).get("pathname", "/primus")
        self.api_path = "/" + servers.get("web", {}).get("urlPathForActions", "api")
        self.port = free_port()
        self.config_path = workdir / f"{name}.yaml"
        self.log_path = workdir / f"{name}.log"
        self.event_log = workdir / f"{name}.events"
        self.config_path.write_text(yaml.safe_dump(merged))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.ws_path}"

    def start(self) -> Server:
        env = {k: v for k, v in os.environ.items() if k not in ("PORT", "SQUALL_ENV")}
        env.pop("SQUALL_REDIS_URL", None)
        env["SQUALL_TEST_EVENT_LOG"] = str(self.event_log)
        self.event_log.write_text("")
        command = [sys.executable, "server.py", "--env", "test", "--config", str(self.config_path)]
        command += ["--loop", self.loop]
        if self.port_from_env:
            env["PORT"] = str(self.port)
        else:
            command += ["--port", str(self.port)]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log, env=env)
        Server.started.append(self)
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server {self.name} exited at boot:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                # any answer: the port opens once the app has started (404 without web.enabled)
                http_request(self, "GET", f"{self.api_path}/status", timeout=1)
                return self
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=0.1)  # poll interval while booting; exits are caught above
        self.kill()
        raise RuntimeError(f"server {self.name} not ready in {BOOT_TIMEOUT}s:\n{self.log_tail()}")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float = TIMEOUT) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

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

    def events(self, kind: str) -> list[str]:
        """What follows ``kind`` on each event log line of that kind."""
        lines = self.event_log.read_text().splitlines()
        return [line.split(" ", 1)[1] for line in lines if line.startswith(kind + " ")]

    def leaves(self) -> list[tuple[str, str]]:
        """``(connection id, room)`` per leave middleware call on a ``notify-*`` room."""
        return [tuple(entry.split(" ", 1)) for entry in self.events("leave")]

    def destroyed(self) -> list[str]:
        """Connection ids the connection middleware ``destroy`` hook saw."""
        return self.events("destroy")


# --- HTTP -----------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_request(
    server: Server,
    method: str,
    path: str,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> Response:
    """One request on a fresh connection; ``path`` goes on the wire exactly as given."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return Response(reply.status, reply.headers, reply.read())
    finally:
        conn.close()


def set_cookies(response: Response) -> list[str]:
    return response.headers.get_all("Set-Cookie") or []


# --- WebSocket ------------------------------------------------------------------------------


Frame = Any  # a decoded JSON value, or bytes for a binary frame


class Client:
    """A WebSocket peer that records every frame; tests take frames out by predicate.

    ``request`` is the one drain helper: it sends a verb with the next numeric messageId and
    returns the reply carrying that id, leaving every other frame in ``inbox``.
    """

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.inbox: list[Frame] = []
        self.sent = 0  # frames sent so far: the messageCount the next reply should carry
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._next_id = 0
        self._changed = asyncio.Event()
        self._closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.inbox.append(json.loads(raw) if isinstance(raw, str) else raw)
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason
            self._closed.set()
            self._changed.set()

    @property
    def local_port(self) -> int:
        return self.ws.local_address[1]

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
                            f"frame; inbox: {self.inbox}"
                        )
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"no matching frame in {timeout}s; inbox: {self.inbox}") from None

    async def send_raw(self, data: str | bytes) -> None:
        self.sent += 1
        await self.ws.send(data)

    async def send(self, frame: Any) -> None:
        await self.send_raw(json.dumps(frame))

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def request(self, event: str, timeout: float = TIMEOUT, **fields: Any) -> dict:
        message_id = self.new_id()
        await self.send({"event": event, "messageId": message_id, **fields})
        return await self.reply(message_id, timeout)

    async def reply(self, message_id: Any, timeout: float = TIMEOUT) -> dict:
        return await self.next(lambda f: is_reply(f) and f.get("messageId") == message_id, timeout)

    async def action(self, action_name: str, /, **params: Any) -> dict:
        return await self.request("action", params={"action": action_name, **params})

    async def details(self) -> dict:
        return (await self.request("detailsView"))["data"]

    async def wait_closed(self, timeout: float = TIMEOUT) -> tuple[int | None, str | None]:
        try:
            async with asyncio.timeout(timeout):
                await self._closed.wait()
        except TimeoutError:
            raise AssertionError(f"socket still open after {timeout}s") from None
        return self.close_code, self.close_reason

    async def close(self) -> None:
        await self.ws.close()
        await self._reader

    def reset(self) -> None:
        """Vanish abruptly: a TCP RST (SO_LINGER 0), no close frame."""
        sock = self.ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.ws.transport.abort()


def action_frame(message_id: Any, action_name: str, /, **params: Any) -> dict:
    """The frame of an ``action`` verb, for tests that send without waiting for the reply."""
    return {"event": "action", "messageId": message_id, "params": {"action": action_name, **params}}


def is_reply(frame: Frame) -> bool:
    return isinstance(frame, dict) and frame.get("context") == "response"


async def open_client(
    server: Server,
    query: str = "",
    headers: dict[str, str] | None = None,
    origin: str | None = None,
    await_welcome: bool = True,
    compression: str | None = "deflate",
) -> Client:
    """Connect to ``server``; by default also take the welcome frame out of the inbox."""
    ws = await connect(
        server.ws_url + query,
        additional_headers=headers,
        origin=origin,
        open_timeout=TIMEOUT,
        ping_interval=None,
        max_size=None,
        compression=compression,
    )
    client = Client(ws)
    if await_welcome:
        await client.next(lambda f: isinstance(f, dict) and f.get("context") == "api")
    return client


class RawPeer:
    """A WebSocket peer on a bare blocking socket: it answers no ping and reads only when told,
    to play the silent or stalled client the server must get rid of."""

    def __init__(self, server: Server, receive_buffer: int | None = None) -> None:
        self.sock = socket.socket()
        if receive_buffer:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(("127.0.0.1", server.port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {server.ws_path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            assert chunk, "closed during the handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head

    def send(self, frame: Any, masked: bool = True) -> None:
        """Send one text frame, masked as RFC 6455 5.3 requires of clients unless told not to."""
        payload = json.dumps(frame).encode()
        size = len(payload)
        mask_bit = 0x80 if masked else 0
        if size < 126:
            header = struct.pack("!BB", 0x81, mask_bit | size)
        elif size < 65536:
            header = struct.pack("!BBH", 0x81, mask_bit | 126, size)
        else:
            header = struct.pack("!BBQ", 0x81, mask_bit | 127, size)
        if masked:
            mask = os.urandom(4)
            payload = mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + payload)

    def _exact(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def frames(self) -> list[tuple[int, bytes]]:
        """Read ``(opcode, payload)`` until the server closes the TCP connection."""
        found = []
        try:
            while True:
                first, second = self._exact(2)
                size = second & 0x7F
                if size == 126:
                    size = struct.unpack("!H", self._exact(2))[0]
                elif size == 127:
                    size = struct.unpack("!Q", self._exact(8))[0]
                found.append((first & 0x0F, self._exact(size)))
        except (EOFError, ConnectionResetError):
            return found

    def close(self) -> None:
        self.sock.close()


async def stalled_member(server: Server, member: Client, members: int) -> RawPeer:
    """A peer that joins defaultRoom, then reads nothing (its receive buffer is 4 kB), returned
    once ``member`` counts ``members`` in the room."""
    stalled = RawPeer(server, receive_buffer=4096)
    stalled.send({"event": "roomAdd", "room": "defaultRoom", "messageId": 1})
    await eventually(
        lambda: member.request("roomView", room="defaultRoom"),
        lambda reply: reply["data"]["membersCount"] == members,
    )
    return stalled


def close_code(frames: list[tuple[int, bytes]]) -> int | None:
    """The code of the close frame (opcode 8) among ``frames``, if any."""
    closes = [payload for opcode, payload in frames if opcode == 8]
    return struct.unpack("!H", closes[0][:2])[0] if closes and len(closes[0]) >= 2 else None


# --- matchers: stand-ins for values a test cannot know, compared with == ---------------------


class Match:
    def __init__(self, description: str, accepts: Callable[[Any], bool]) -> None:
        self.description = description
        self.accepts = accepts

    def __eq__(self, other: object) -> bool:
        try:
            return bool(self.accepts(other))
        except Exception:
            return False

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return self.description


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_uuid4(value: Any) -> bool:
    return (
        isinstance(value, str) and uuid.UUID(value).version == 4 and str(uuid.UUID(value)) == value
    )


def _parse_iso(value: Any) -> datetime.datetime:
    parsed = datetime.datetime.fromisoformat(value)
    assert parsed.tzinfo is not None
    return parsed


POSITIVE_INT = Match("<int > 0>", lambda v: _is_int(v) and v > 0)
NON_EMPTY_STR = Match("<non-empty str>", lambda v: isinstance(v, str) and v != "")
UUID4 = Match("<uuid4 str>", _is_uuid4)
ISO8601 = Match("<ISO 8601 with zone>", lambda v: isinstance(v, str) and bool(_parse_iso(v)))


def now_ms(slack_ms: float = 30_000) -> Match:
    """An epoch time in milliseconds (an int) close to now."""
    now = time.time() * 1000
    return Match(f"<ms near {now:.0f}>", lambda v: _is_int(v) and abs(v - now) < slack_ms)


def ok(data: Any = ..., message_id: Any = POSITIVE_INT, count: Any = POSITIVE_INT) -> dict:
    """The success reply to a verb (PROTOCOL.md §2.2); ``data=...`` means no data key."""
    reply = {"status": "OK", "context": "response", "messageId": message_id, "messageCount": count}
    if data is not ...:
        reply["data"] = data
    return reply


def failed(message: str, message_id: Any = POSITIVE_INT, count: Any = POSITIVE_INT) -> dict:
    """The failure reply to a verb (PROTOCOL.md §2.2)."""
    return {
        "status": message,
        "error": message,
        "context": "response",
        "messageId": message_id,
        "messageCount": count,
    }


def action_reply(fields: dict, message_id: Any = POSITIVE_INT, count: Any = POSITIVE_INT) -> dict:
    """An action reply (PROTOCOL.md §2.3): the action's fields plus the reply keys."""
    return {**fields, "context": "response", "messageId": message_id, "messageCount": count}
