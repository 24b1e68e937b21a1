"""What every test tier that runs real servers shares: one launcher (:class:`Server`), one polite
client (:class:`Client`, websockets' own), one rude peer (:class:`Peer`, bare RFC 6455), HTTP,
the timeouts, value matchers, log checks and polling for state that has no event to await.

It imports nothing of Squall's: the tiers talk to ``server.py`` from the outside, and PROTOCOL.md
is the contract. A tier's ``support.py`` adds only what that tier alone needs (Redis for the
cluster, Chromium for the browser, hand-made requests for the hostile tier). pytest puts
``tests/`` on the path (the tier folders are packages, ``tests/`` is not).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import http.client
import inspect
import io
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parents[1]

#: Scale every timeout on a slow machine (as websockets' WEBSOCKETS_TESTS_TIMEOUT_FACTOR).
FACTOR = float(os.environ.get("SQUALL_TESTS_TIMEOUT_FACTOR", "1"))
#: The bound of every wait on an event (a frame, a reply, a close).
TIMEOUT = 5.0 * FACTOR
#: How long a server may take to boot.
BOOT_TIMEOUT = 20.0 * FACTOR
#: How long a server may take to stop: config/test.yaml's shutdownTimeout (5 s), plus closing.
SHUTDOWN_TIMEOUT = 10.0 * FACTOR
#: Seconds between two looks at state that has no event to await.
POLL = 0.05


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


def unique(prefix: str) -> str:
    """A room (or cluster) name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def eventually(
    fetch: Callable[[], Any],
    accept: Callable[[Any], bool],
    timeout: float = TIMEOUT,
    what: str = "the value",
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
            raise AssertionError(f"{what}: not accepted after {timeout}s; last value: {value!r}")
        await asyncio.sleep(POLL)  # poll interval: this state has no event to await


# --- matchers: stand-ins for values a test cannot know, compared with == -------------------------


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
    return Match(f"<ms near {now:.0f}>", lambda v: _is_int(v) and abs(v - now) <= slack_ms)


# --- frames and replies (PROTOCOL.md §2) ---------------------------------------------------------

Frame = Any  # a decoded JSON value, or bytes for a binary frame


def action_frame(message_id: Any, name: str, /, **params: Any) -> dict[str, Any]:
    """The frame of an ``action`` verb, for tests that send without waiting for the reply."""
    return {"event": "action", "messageId": message_id, "params": {"action": name, **params}}


def is_reply(frame: Frame) -> bool:
    return isinstance(frame, dict) and frame.get("context") == "response"


def is_said(frame: Frame, room: str, message: Any) -> bool:
    """A room message ``message`` said in ``room`` (PROTOCOL.md §2.5)."""
    return (
        isinstance(frame, dict)
        and frame.get("context") == "user"
        and frame.get("room") == room
        and frame.get("message") == message
    )


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


# --- logs ----------------------------------------------------------------------------------------

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


#: The marker for ``fail_on_stray_errors`` (registered in tests/conftest.py).
SERVER_ERRORS_MARKER = (
    "server_errors(*texts): the test makes a server log ERROR records mentioning these texts"
)


@contextlib.contextmanager
def fail_on_stray_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if a server logged an ERROR or a traceback it did not expect while it ran
    (noise fails: an error nobody asserts is a bug nobody sees); expected ones are declared
    with ``@pytest.mark.server_errors(text)``."""
    allowed = tuple(t for mark in request.node.iter_markers("server_errors") for t in mark.args)
    offsets = {server: server.log_size() for server in Server.started}
    yield
    stray = {
        server.name: found
        for server in Server.started
        if (found := error_records(server.log_text(offsets.get(server, 0)), allowed))
    }
    assert not stray, f"unexpected server errors: {stray}"


# --- the server process --------------------------------------------------------------------------

#: What ``Server.stop`` reports for a process that ignored SIGTERM and had to be killed.
HUNG = "hung"


def _dump_stacks(pid: int) -> str:
    """The Python stacks of a stuck process (py-spy, when the test environment has it)."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        return "(py-spy is not installed: no stacks)"
    try:
        dump = subprocess.run(
            [str(spy), "dump", "--pid", str(pid)], capture_output=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return "(py-spy dump timed out)"
    return (dump.stdout + dump.stderr).decode(errors="replace")


def stop_process(
    proc: subprocess.Popen[bytes], timeout: float, signalled: bool = False
) -> int | str:
    """SIGTERM (unless ``signalled`` already: a second one may cut a clean shutdown short),
    then SIGKILL to its process group if it does not exit in time: ``HUNG`` and its stacks."""
    if proc.poll() is None:
        if not signalled:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stacks = _dump_stacks(proc.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: only what we started
            proc.wait(timeout=TIMEOUT)
            return f"{HUNG}; its threads were:\n{stacks}"
    return proc.returncode


class Server:
    """``python server.py --env test --port N [--config <name>.yaml]`` as a subprocess.

    ``options`` are written to ``<workdir>/<name>.yaml`` and merged last (``--config``); without
    them the project's own config is all there is. ``environment`` is what ``--env`` names (or
    ``SQUALL_ENV``, with ``environment_from_env``); None gives neither, so the server takes its
    default. The port is the server's for its life, so a stopped or killed server starts again
    on it. ``event_log`` is a file test middleware may append to (``SQUALL_TEST_EVENT_LOG``):
    what it recorded outlives the process.
    """

    #: Every server this session started, for the stray-error check after each test.
    started: ClassVar[list[Server]] = []

    def __init__(
        self,
        name: str,
        workdir: Path,
        options: dict[str, Any] | None = None,
        *,
        workers: int = 1,
        loop: str = "auto",
        port_from_env: bool = False,
        environment: str | None = "test",
        environment_from_env: bool = False,
        client_ssl: ssl.SSLContext | None = None,
        project: Path = ROOT,
    ) -> None:
        self.name = name
        self.workers = workers
        self.loop = loop
        self.port_from_env = port_from_env
        self.environment = environment
        self.environment_from_env = environment_from_env
        self.client_ssl = client_ssl
        self.project = project
        self.port = free_port()
        self.options = options
        self.config_path = workdir / f"{name}.yaml"
        self.log_path = workdir / f"{name}.log"
        self.event_log = workdir / f"{name}.events"
        if options is not None:
            self.config_path.write_text(yaml.safe_dump(options))
        servers = (options or {}).get("servers", {})
        #: where the socket and the actions answer, following the options given
        self.ws_path = servers.get("websocket", {}).get("server", {}).get("pathname", "/primus")
        self.api_path = "/" + servers.get("web", {}).get("urlPathForActions", "api")
        self.cluster = (options or {}).get("redis", {}).get("clusterName")
        self.proc: subprocess.Popen[bytes] | None = None
        self.id: str | None = None  # the server's id, once status has answered
        self.exit_checked = False  # killed on purpose, or its exit checked by the test

    def __repr__(self) -> str:
        return f"<server {self.name} :{self.port} {self.id}>"

    @property
    def base_url(self) -> str:
        return f"{'https' if self.client_ssl else 'http'}://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.client_ssl else 'ws'}://127.0.0.1:{self.port}{self.ws_path}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    # -- life ---------------------------------------------------------------------------------

    def spawn(self) -> Server:
        """Start the process without waiting for it (see :meth:`wait_ready`)."""
        env = {k: v for k, v in os.environ.items() if k not in ("PORT", "SQUALL_ENV")}
        env.pop("SQUALL_REDIS_URL", None)
        env["SQUALL_TEST_EVENT_LOG"] = str(self.event_log)
        if not self.event_log.exists():
            self.event_log.write_text("")
        command = [sys.executable, "server.py", "--loop", self.loop]
        if self.environment is not None and self.environment_from_env:
            env["SQUALL_ENV"] = self.environment
        elif self.environment is not None:
            command += ["--env", self.environment]
        if self.port_from_env:
            env["PORT"] = str(self.port)
        else:
            command += ["--port", str(self.port)]
        if self.options is not None:
            command += ["--config", str(self.config_path)]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command, cwd=self.project, stdout=log, stderr=log, env=env, start_new_session=True
            )
        if self not in Server.started:
            Server.started.append(self)
        return self

    def wait_ready(self, until: Callable[[dict[str, Any]], bool] | None = None) -> Server:
        """Until the server answers HTTP (and, with ``until``, its ``status`` satisfies it);
        fails naming the log on exit or timeout."""
        assert self.proc is not None
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server {self.name} exited at boot:\n{self.log_tail()}")
            with contextlib.suppress(OSError, ValueError):
                # any answer: the port opens once the app has started (404 without web.enabled)
                response = http_request(self, "GET", f"{self.api_path}/status", timeout=1)
                status = response.json() if response.status == 200 else {}
                self.id = status.get("id", self.id)
                if until is None or until(status):
                    return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"server {self.name} not ready in {BOOT_TIMEOUT}s:\n{self.log_tail()}"
                )
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=POLL)  # poll interval while booting; exits caught above

    def start(self, until: Callable[[dict[str, Any]], bool] | None = None) -> Server:
        return self.spawn().wait_ready(until)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout: float = TIMEOUT) -> int:
        """Wait for the process to exit on its own; the test checks the status it returns."""
        assert self.proc is not None
        self.exit_checked = True
        return self.proc.wait(timeout=timeout)

    def kill9(self) -> None:
        """Crash it: SIGKILL, no shutdown, sockets just drop."""
        assert self.proc is not None
        self.exit_checked = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=TIMEOUT)

    def freeze(self) -> None:
        """SIGSTOP: sockets stay open but nothing answers, like a dead link."""
        self.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.signal(signal.SIGCONT)

    def stop(self, signalled: bool = False) -> int | str:
        """SIGTERM and wait (thawed first, if frozen); whatever state it is in, nothing of it
        keeps running. Its exit status, or ``HUNG``."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.thaw()
        return stop_process(self.proc, SHUTDOWN_TIMEOUT, signalled)

    # -- over HTTP, from async tests -----------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """The ``status`` action's reply."""
        return await self.action("status")

    async def action(self, name: str, /, **params: Any) -> dict[str, Any]:
        """``POST /api/<name>`` with a JSON body; the decoded reply, whatever its status."""
        body, headers = json.dumps(params), {"Content-Type": "application/json"}
        path = f"{self.api_path}/{name}"
        return (await asyncio.to_thread(http_request, self, "POST", path, body, headers)).json()

    async def get(self, path: str) -> tuple[int, Any]:
        """``GET path``: the HTTP status and the JSON body."""
        response = await asyncio.to_thread(http_request, self, "GET", path)
        return response.status, response.json()

    async def broker(self) -> dict[str, Any]:
        return (await self.status())["broker"]

    async def wait_broker(self, state: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Until the broker's ``state`` (``status``) is ``state``; the broker's status then."""
        what = f"broker of {self.name} {state!r}"
        return await eventually(self.broker, lambda b: b["state"] == state, timeout, what)

    # -- what it said -------------------------------------------------------------------------

    def log_text(self, start: int = 0) -> str:
        """The server's log (both streams) from byte ``start`` on."""
        with self.log_path.open("rb") as log:
            log.seek(start)
            return log.read().decode(errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def logged(self, pattern: str, start: int = 0) -> bool:
        """Whether a log line from byte ``start`` on matches the regex ``pattern`` (no wait)."""
        return re.search(pattern, self.log_text(start)) is not None

    async def wait_log(self, pattern: str, start: int = 0, timeout: float = TIMEOUT) -> str:
        """The first log line from byte ``start`` on that matches the regex ``pattern``."""
        regex = re.compile(pattern)

        def found() -> str | None:
            return next((ln for ln in self.log_text(start).splitlines() if regex.search(ln)), None)

        return await eventually(found, lambda line: line is not None, timeout, pattern)

    def events(self, kind: str) -> list[str]:
        """What follows ``kind`` on each line of that kind the test middleware recorded."""
        lines = self.event_log.read_text().splitlines()
        return [line.split(" ", 1)[1] for line in lines if line.startswith(kind + " ")]

    def rss(self) -> int:
        """The server's resident set size in bytes, from /proc/<pid>/status."""
        text = Path(f"/proc/{self.pid}/status").read_text()
        kilobytes = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
        assert kilobytes, text
        return int(kilobytes.group(1)) * 1024


def start_all(
    servers: Iterable[Server], until: Callable[[dict[str, Any]], bool] | None = None
) -> list[Server]:
    """Boot several servers at once (in parallel: boot time dominates a test with several);
    ``until`` as :meth:`Server.wait_ready` takes it."""
    started = [server.spawn() for server in servers]
    try:
        for server in started:
            server.wait_ready(until)
    except Exception:
        with contextlib.suppress(AssertionError):  # the boot failure is the news
            stop_all(started)
        raise
    return started


def stop_all(servers: Iterable[Server]) -> None:
    """Stop several servers at once: all get SIGTERM, then each is waited for.

    Raises:
        AssertionError: a server (unless ``exit_checked``) crashed, or did not stop cleanly
            (exit 0 within ``SHUTDOWN_TIMEOUT``) on SIGTERM; after all are stopped.
    """
    servers = list(servers)
    signalled = [server for server in servers if server.alive()]
    for server in signalled:
        server.signal(signal.SIGTERM)
    codes = {server: server.stop(signalled=server in signalled) for server in servers}
    bad = {s.name: code for s, code in codes.items() if code != 0 and not s.exit_checked}
    if bad:
        tails = "\n".join(f"--- {s.name}:\n{s.log_tail()}" for s in servers if s.name in bad)
        raise AssertionError(f"servers did not stop cleanly on SIGTERM: {bad}\n{tails}")


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    """``server`` started, and stopped afterwards whatever happened."""
    try:
        yield server.start()
    finally:
        server.stop()


@contextlib.contextmanager
def running_server(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    options: dict[str, Any],
    *,
    base: dict[str, Any] | None = None,
    **settings: Any,
) -> Iterator[Server]:
    """A started server with ``options`` over the tier's ``base``; stopped afterwards."""
    workdir = tmp_path_factory.mktemp(name)
    with running(Server(name, workdir, deep_merge(base or {}, options), **settings)) as server:
        yield server


# --- HTTP ----------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def cookies(self) -> list[str]:
        """Every ``Set-Cookie`` value."""
        return self.headers.get_all("Set-Cookie") or []


def http_request(
    server: Server,
    method: str,
    path: str,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> Response:
    """One request on a fresh connection (TLS to a secure server); ``path`` as given."""
    if server.client_ssl is None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    else:
        conn = http.client.HTTPSConnection(
            "127.0.0.1", server.port, timeout=timeout, context=server.client_ssl
        )
    try:
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return Response(reply.status, reply.headers, reply.read())
    finally:
        conn.close()


def parse_response(raw: bytes) -> Response | None:
    """The first response in ``raw`` (None when no complete head arrived), read as a client
    must: its body is ``Content-Length`` bytes, or the rest."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/"):
        return None
    status_line, _, fields = head.partition(b"\r\n")
    headers = http.client.parse_headers(io.BytesIO(fields + b"\r\n\r\n"))
    length = headers.get("Content-Length")
    body = rest[: int(length)] if length is not None else rest
    return Response(int(status_line.split(b" ", 2)[1]), headers, body)


async def open_stream(
    server: Server, *, rcvbuf: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP (or TLS, for a secure server) connection to ``server``; ``rcvbuf`` shrinks its
    receive window, so a peer that stops reading backs up quickly."""
    sock = socket.socket()
    sock.setblocking(False)
    if rcvbuf is not None:
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


# --- WebSocket -----------------------------------------------------------------------------------


class Inbox:
    """The frames a socket received, taken out by predicate; the verbs sent with the next numeric
    ``messageId``, each answered by the reply that carries it (other frames stay)."""

    def __init__(self) -> None:
        self.inbox: list[Frame] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.sent = 0  # frames sent so far: the messageCount the next reply should carry
        self.id = ""  # the connection id, when the test asked for it (detailsView)
        self._next_id = 0
        self._changed = asyncio.Event()
        self._closed = asyncio.Event()

    def _received(self, frame: Frame) -> None:
        self.inbox.append(frame)
        self._changed.set()

    def _ended(self, code: int | None, reason: str | None) -> None:
        self.close_code, self.close_reason = code, reason
        self._closed.set()
        self._changed.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def send_json(self, frame: Any) -> None:
        raise NotImplementedError

    async def next(
        self, match: Callable[[Frame], bool] = lambda f: True, timeout: float = TIMEOUT
    ) -> Frame:
        """Take out the first frame (received or to come) that ``match`` accepts."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for index, frame in enumerate(self.inbox):
                        if match(frame):
                            return self.inbox.pop(index)
                    if self._closed.is_set():
                        raise AssertionError(
                            f"{self!r} closed ({self.close_code} {self.close_reason!r}) with no "
                            f"matching frame; inbox: {str(self.inbox)[:500]}"
                        )
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"{self!r}: no matching frame in {timeout}s; inbox: {str(self.inbox)[:500]}"
            ) from None

    def take(self, match: Callable[[Frame], bool]) -> list[Frame]:
        """Take out every frame received so far that ``match`` accepts."""
        taken = [frame for frame in self.inbox if match(frame)]
        self.inbox = [frame for frame in self.inbox if not match(frame)]
        return taken

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def request(self, event: str, timeout: float = TIMEOUT, **fields: Any) -> dict:
        message_id = self.new_id()
        await self.send_json({"event": event, "messageId": message_id, **fields})
        return await self.reply(message_id, timeout)

    async def reply(self, message_id: Any, timeout: float = TIMEOUT) -> dict:
        return await self.next(lambda f: is_reply(f) and f.get("messageId") == message_id, timeout)

    async def action(self, name: str, /, timeout: float = TIMEOUT, **params: Any) -> dict:
        return await self.request("action", timeout=timeout, params={"action": name, **params})

    async def details(self) -> dict:
        return (await self.request("detailsView"))["data"]

    async def join(self, room: str) -> None:
        reply = await self.request("roomAdd", room=room)
        assert reply.get("status") == "OK", f"{self!r} could not join {room}: {reply}"

    async def say(self, room: str, message: Any) -> None:
        reply = await self.request("say", room=room, message=message)
        assert reply.get("status") == "OK", f"{self!r} could not say in {room}: {reply}"

    async def said(self, room: str, message: Any, timeout: float = TIMEOUT) -> Frame:
        """The next room message ``message`` in ``room``."""
        return await self.next(lambda f: is_said(f, room, message), timeout)

    def count_said(self, room: str, message: Any) -> int:
        """How many copies of ``message`` in ``room`` are in the inbox (taking them out)."""
        return len(self.take(lambda f: is_said(f, room, message)))

    async def wait_closed(self, timeout: float = TIMEOUT) -> tuple[int | None, str | None]:
        try:
            async with asyncio.timeout(timeout):
                await self._closed.wait()
        except TimeoutError:
            raise AssertionError(f"{self!r} still open after {timeout}s") from None
        return self.close_code, self.close_reason


class Client(Inbox):
    """A polite WebSocket client (websockets' own: random masks, permessage-deflate offered,
    pings answered) that records every frame it receives."""

    def __init__(self, ws: ClientConnection, server: Server) -> None:
        super().__init__()
        self.ws = ws
        self.server = server
        self._reader = asyncio.create_task(self._read())

    def __repr__(self) -> str:
        return f"<client {self.id} of {self.server.name}>"

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self._received(json.loads(raw) if isinstance(raw, str) else raw)
        except ConnectionClosed:
            pass
        finally:
            self._ended(self.ws.close_code, self.ws.close_reason)

    @property
    def local_port(self) -> int:
        return self.ws.local_address[1]

    async def send_raw(self, data: str | bytes) -> None:
        self.sent += 1
        await self.ws.send(data)

    async def send_json(self, frame: Any) -> None:
        await self.send_raw(json.dumps(frame))

    send = send_json

    async def close(self) -> None:
        await self.ws.close()
        await self._reader

    def reset(self) -> None:
        """Vanish abruptly: a TCP RST (SO_LINGER 0), no close frame."""
        _reset(self.ws.transport)


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
        origin=origin,  # type: ignore[arg-type]
        open_timeout=TIMEOUT,
        ping_interval=None,
        max_size=None,
        compression=compression,
        ssl=server.client_ssl,
    )
    client = Client(ws, server)
    if await_welcome:
        await client.next(lambda f: isinstance(f, dict) and f.get("context") == "api")
    return client


def _reset(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


#: RFC 6455 opcodes, for frames built by hand.
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
DEFLATE_TAIL = b"\x00\x00\xff\xff"


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


class UpgradeRefused(Exception):
    def __init__(self, response: Response, raw: bytes) -> None:
        super().__init__(f"upgrade refused: {raw[:300]!r}")
        self.response = response
        self.raw = raw


class Peer(Inbox):
    """A WebSocket client on a bare stream that can break every rule a polite client keeps.

    It speaks RFC 6455 well enough to be polite (answers pings and close frames, unless told
    not to answer pings) and exposes everything needed to be rude: raw bytes, unmasked or
    reserved-bit frames, fragments, hand-built compressed frames, pausing its reads, resetting
    the TCP connection.
    """

    #: Every peer opened, closed after each test (tests/conftest.py).
    opened: ClassVar[list[Peer]] = []

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        response: Response,
        answer_pings: bool,
    ) -> None:
        super().__init__()
        self.reader, self.writer, self.response = reader, writer, response
        self.compressed = "permessage-deflate" in (
            response.headers["Sec-WebSocket-Extensions"] or ""
        )
        self.answer_pings = answer_pings
        self.pings: list[bytes] = []
        self.pongs: list[bytes] = []
        self._close_sent = False
        self._reader_task = asyncio.create_task(self._read())
        Peer.opened.append(self)

    def __repr__(self) -> str:
        return f"<peer {self.id}>"

    @classmethod
    async def open(
        cls,
        server: Server,
        *,
        query: str = "",
        headers: dict[str, str] | None = None,
        compress: bool = False,
        rcvbuf: int | None = None,
        welcome: bool = True,
        answer_pings: bool = True,
        timeout: float = TIMEOUT,
    ) -> Peer:
        """Upgrade a fresh connection; raises :class:`UpgradeRefused` on any status but 101."""
        reader, writer = await open_stream(server, rcvbuf=rcvbuf)
        fields = {
            "Host": f"127.0.0.1:{server.port}",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
            "Sec-WebSocket-Version": "13",
        }
        if compress:
            fields["Sec-WebSocket-Extensions"] = (
                "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
            )
        fields.update(headers or {})  # a test's header replaces the default of that name
        lines = [f"GET {server.ws_path}{query} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in fields.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            async with asyncio.timeout(timeout):
                head = await reader.readuntil(b"\r\n\r\n")
                response = parse_response(head)
                assert response is not None, head
                if response.status != 101:
                    length = int(response.headers.get("Content-Length") or 0)
                    response.body = await reader.readexactly(length) if length else b""
                    raise UpgradeRefused(response, head + response.body)
        except BaseException:
            writer.transport.abort()
            raise
        peer = cls(reader, writer, response, answer_pings)
        if welcome:
            await peer.next(lambda f: isinstance(f, dict) and f.get("context") == "api")
        return peer

    # -- receiving ----------------------------------------------------------------------------

    async def _read(self) -> None:
        fragments: list[bytes] = []
        compressed = False
        code = reason = None
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
                        compressed = bool(first & 0x40)
                        message_opcode = opcode
                    fragments.append(payload)
                    if not first & 0x80:
                        continue
                    data, fragments = b"".join(fragments), []
                    if compressed:
                        data = zlib.decompressobj(-15).decompress(data + DEFLATE_TAIL)
                    self._received(json.loads(data) if message_opcode == OP_TEXT else bytes(data))
                elif opcode == OP_PING:
                    self.pings.append(payload)
                    if self.answer_pings:
                        self._send_quietly(frame_bytes(OP_PONG, payload))
                elif opcode == OP_PONG:
                    self.pongs.append(payload)
                elif opcode == OP_CLOSE:
                    code = struct.unpack("!H", payload[:2])[0] if payload else 1005
                    reason = payload[2:].decode("utf-8", "replace")
                    if not self._close_sent:
                        self._send_quietly(frame_bytes(OP_CLOSE, payload[:2]))
                    self.writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError):
            code = 1006 if code is None else code  # the TCP connection ended without a close
        finally:
            self._ended(code, reason)

    async def error_push(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        return await self.next(lambda f: isinstance(f, dict) and f.get("context") == "error")

    # -- sending ------------------------------------------------------------------------------

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

    # -- leaving ------------------------------------------------------------------------------

    def pause_reading(self) -> None:
        self.writer.transport.pause_reading()

    def resume_reading(self) -> None:
        self.writer.transport.resume_reading()

    def reset(self) -> None:
        """Vanish abruptly: a TCP RST (SO_LINGER 0), no close frame."""
        _reset(self.writer.transport)

    async def close(self, code: int = 1000) -> None:
        """The polite way out: a close frame, then wait for the server's."""
        if not self.closed:
            self._close_sent = True
            self._send_quietly(frame_bytes(OP_CLOSE, struct.pack("!H", code)))
            with contextlib.suppress(AssertionError):
                await self.wait_closed()
        self.writer.transport.abort()
        await asyncio.gather(self._reader_task, return_exceptions=True)

    @classmethod
    async def close_all(cls) -> None:
        """Reset every peer opened so far, whatever state it is in (after each test)."""
        opened, cls.opened[:] = list(cls.opened), []
        for peer in opened:
            with contextlib.suppress(Exception):
                peer.reset()
            await asyncio.gather(peer._reader_task, return_exceptions=True)


# --- Node ----------------------------------------------------------------------------------------


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
