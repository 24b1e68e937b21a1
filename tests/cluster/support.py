"""What the cluster tests share: a real ``redis-server``, real Squall processes pointing at it, a
recording WebSocket peer, HTTP, and bounded waits.

Everything talks to the processes from the outside (PROTOCOL.md is the contract).
Every wait has a timeout and waits on an event (a frame, a process exit); where there is no
event (a server's view of Redis), ``eventually`` polls at most every 100 ms up to a deadline.

Counting "exactly once" without sleeping: Redis delivers the messages one publisher sends in
the order it sent them, on every channel, to each subscriber connection; a server writes what
its subscriber hears to its sockets in that order. So once a client sees a *fence* (a message
sent after the ones under test, by the same server), every copy of those has arrived too.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import redis
import yaml
from testkit import ServerLog, free_port
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from squall.supervisor import MIN_LIFETIME

ROOT = Path(__file__).resolve().parents[2]

#: Scale every timeout on a slow machine (as the integration tier does).
FACTOR = float(os.environ.get("SQUALL_TESTS_TIMEOUT_FACTOR", "1"))
TIMEOUT = 5.0 * FACTOR
BOOT_TIMEOUT = 20.0 * FACTOR
SHUTDOWN_TIMEOUT = 10.0 * FACTOR  # config/test.yaml: shutdownTimeout 5000, plus closing
POLL = 0.1  # seconds between two looks at state that has no event to await

#: Short enough that crash tests are fast, long enough for a loaded test machine.
LEASE_MS = 1500
CANARY_MS = 500


def unique(prefix: str) -> str:
    """A room (or cluster) name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


#: The exit status ``stop`` reports for a process that ignored SIGTERM and had to be killed.
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


def _stop_process(
    proc: subprocess.Popen[bytes], timeout: float, signalled: bool = False
) -> int | str:
    """SIGTERM (unless ``signalled`` already: a second one may cut a clean shutdown short),
    then SIGKILL to the process group if it does not exit in time: ``HUNG`` and its stacks."""
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


# --- Redis ----------------------------------------------------------------------------------


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError(
            "redis-server not found: install Debian's redis-server (./scripts/test does)"
        )
    return found


class RedisServer:
    """``redis-server`` on a free loopback port, restartable on that port: without persistence
    (a restart forgets everything) unless ``persistent`` (an append-only file, kept across a
    restart); with ``requirepass`` when given a ``password``."""

    def __init__(
        self, workdir: Path, password: str | None = None, persistent: bool = False
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.password = password
        self.persistent = persistent
        self.log_path = workdir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        credentials = f":{self.password}@" if self.password else ""
        return f"redis://{credentials}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        command = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--dir", str(self.workdir)]
        command += ["--appendonly", "yes" if self.persistent else "no"]
        if self.password:
            command += ["--requirepass", self.password]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited at boot:\n{self.log_path.read_text()}")
            with contextlib.suppress(redis.RedisError), self.client() as client:
                if client.ping():
                    return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server not ready in {BOOT_TIMEOUT}s")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=POLL)  # poll interval while booting; exits caught above

    def stop(self) -> None:
        if self.proc is not None:
            _stop_process(self.proc, TIMEOUT)

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, socket_timeout=TIMEOUT
        )

    def smembers(self, key: str) -> set[str]:
        with self.client() as client:
            return {value.decode() for value in client.smembers(key)}

    def numsub(self, channel: str) -> int:
        with self.client() as client:
            return dict(client.pubsub_numsub(channel))[channel.encode()]

    def publish(self, channel: str, body: bytes) -> int:
        with self.client() as client:
            return client.publish(channel, body)


# --- Squall ---------------------------------------------------------------------------------


def cluster_options(
    redis_url: str | None, cluster: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The YAML every cluster-tier server gets: our test actions, Redis, a short lease."""
    options: dict[str, Any] = {
        # info: the log of a failed test shows each server's start and shutdown steps
        "general": {"logLevel": "info", "paths": {"actions": ["actions", "tests/cluster/actions"]}},
    }
    if redis_url is not None:
        options["redis"] = {
            "enabled": True,
            "url": redis_url,
            "clusterName": cluster,
            "leaseTimeout": LEASE_MS,
            "canaryInterval": CANARY_MS,
        }
    for key, value in (extra or {}).items():
        options[key] = {**options.get(key, {}), **value}
    return options


class SquallServer(ServerLog):
    """``server.py --port N --env test --config <name>.yaml [--workers N]`` as a subprocess."""

    #: Every server started in this session, for the check of stray errors after each test.
    started: list[SquallServer] = []

    def __init__(
        self,
        name: str,
        workdir: Path,
        options: dict[str, Any],
        workers: int = 1,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.workers = workers
        self.config_path = workdir / f"{name}.yaml"
        self.log_path = workdir / f"{name}.log"
        self.config_path.write_text(yaml.safe_dump(options))
        self.cluster = options.get("redis", {}).get("clusterName")
        self.proc: subprocess.Popen[bytes] | None = None
        self.id: str | None = None
        self.exit_checked = False  # killed on purpose, or its exit checked by the test

    def __repr__(self) -> str:
        return f"<server {self.name} :{self.port} {self.id}>"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/primus"

    def spawn(self) -> SquallServer:
        """Start the process without waiting for it (see ``wait_ready``)."""
        env = {k: v for k, v in os.environ.items() if k not in ("PORT", "SQUALL_ENV")}
        env.pop("SQUALL_REDIS_URL", None)
        command = [sys.executable, "server.py", "--port", str(self.port), "--env", "test"]
        command += ["--config", str(self.config_path)]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command, cwd=ROOT, stdout=log, stderr=log, env=env, start_new_session=True
            )
        if self not in SquallServer.started:
            SquallServer.started.append(self)
        return self

    def wait_ready(self, broker_ok: bool = True) -> SquallServer:
        """Until ``status`` answers (with the broker ok, unless ``broker_ok`` is false: a server
        started while Redis is away); fails naming the log on exit or timeout."""
        assert self.proc is not None
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server {self.name} exited at boot:\n{self.log_tail()}")
            with contextlib.suppress(OSError, ValueError):
                reply = http_json(self.port, "GET", "/api/status", timeout=1)
                if reply["broker"]["state"] == "ok" or not broker_ok:
                    self.id = reply["id"]
                    return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"server {self.name} not ready in {BOOT_TIMEOUT}s:\n{self.log_tail()}"
                )
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=POLL)  # poll interval while booting; exits caught above

    def status_sync(self) -> dict[str, Any]:
        return http_json(self.port, "GET", "/api/status")

    async def get(self, path: str) -> tuple[int, Any]:
        """GET ``path``: the HTTP status and the JSON body."""
        return await asyncio.to_thread(http_request, self.port, "GET", path)

    async def wait_broker(self, state: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Until the broker's ``state`` is ``state``; its status then."""
        return await eventually(
            self.broker, lambda b: b["state"] == state, timeout, f"broker of {self.name} {state!r}"
        )

    async def status(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.status_sync)

    async def broker(self) -> dict[str, Any]:
        return (await self.status())["broker"]

    async def action(self, name: str, /, **params: Any) -> dict[str, Any]:
        """POST /api/<name> with a JSON body; the decoded reply."""
        return await asyncio.to_thread(http_json, self.port, "POST", f"/api/{name}", params)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        self.exit_checked = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=TIMEOUT)

    def stop(self, signalled: bool = False) -> int | str:
        """SIGTERM and wait; whatever state it is in, nothing of it keeps running."""
        if self.proc is None:
            return 0
        return _stop_process(self.proc, SHUTDOWN_TIMEOUT, signalled)

    def wait_exit(self, timeout: float = TIMEOUT) -> int:
        """Wait for the process to exit on its own; the test checks the status it returns."""
        assert self.proc is not None
        self.exit_checked = True
        return self.proc.wait(timeout=timeout)


def stop_all(servers: Iterable[SquallServer]) -> None:
    """Stop several servers at once: all get SIGTERM, then each is waited for.

    Raises:
        AssertionError: a server (unless ``exit_checked``) crashed, or did not stop cleanly
            (exit 0 within ``SHUTDOWN_TIMEOUT``) on SIGTERM; after all are stopped.
    """
    servers = list(servers)
    signalled = []
    for server in servers:
        if server.alive():
            server.proc.send_signal(signal.SIGTERM)
            signalled.append(server)
    codes = {server: server.stop(signalled=server in signalled) for server in servers}
    bad = {s.name: code for s, code in codes.items() if code != 0 and not s.exit_checked}
    if bad:
        tails = "\n".join(f"--- {s.name}:\n{s.log_tail()}" for s in servers if s.name in bad)
        raise AssertionError(f"servers did not stop cleanly on SIGTERM: {bad}\n{tails}")


def start_all(servers: Iterable[SquallServer]) -> list[SquallServer]:
    """Boot several servers at once (in parallel: boot time dominates this tier)."""
    started = [server.spawn() for server in servers]
    try:
        for server in started:
            server.wait_ready()
    except Exception:
        with contextlib.suppress(AssertionError):  # the boot failure is the news
            stop_all(started)
        raise
    return started


# --- HTTP -----------------------------------------------------------------------------------


def http_request(
    port: int, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = TIMEOUT
) -> tuple[int, Any]:
    """One request on a fresh connection: the HTTP status and the JSON reply."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body)
        headers = {} if body is None else {"Content-Type": "application/json"}
        conn.request(method, path, body=payload, headers=headers)
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        conn.close()


def http_json(
    port: int, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = TIMEOUT
) -> dict[str, Any]:
    """One request on a fresh connection; the JSON reply (any HTTP status)."""
    return http_request(port, method, path, body, timeout)[1]


def query(**params: Any) -> str:
    return urllib.parse.urlencode(params)


# --- WebSocket ------------------------------------------------------------------------------


Frame = Any


class Client:
    """A WebSocket peer that records every frame; tests take frames out by predicate.

    ``request`` sends a verb with the next numeric messageId and returns the reply carrying
    that id, leaving every other frame in ``inbox``.
    """

    def __init__(self, ws: ClientConnection, server: SquallServer) -> None:
        self.ws = ws
        self.server = server
        self.id: str = ""
        self.inbox: list[Frame] = []
        self.close_code: int | None = None
        self._next_id = 0
        self._changed = asyncio.Event()
        self._closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    def __repr__(self) -> str:
        return f"<client {self.id} of {self.server.name}>"

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.inbox.append(json.loads(raw))
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self._closed.set()
            self._changed.set()

    async def next(
        self, accept: Callable[[Frame], bool], timeout: float = TIMEOUT, what: str = "a frame"
    ) -> Frame:
        """Take out and return the first frame ``accept`` takes, waiting up to ``timeout``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for index, frame in enumerate(self.inbox):
                if accept(frame):
                    return self.inbox.pop(index)
            if self._closed.is_set():
                raise AssertionError(f"{self!r} closed ({self.close_code}) waiting for {what}")
            self._changed.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                await asyncio.wait_for(self._changed.wait(), max(remaining, 0))
            except TimeoutError:
                raise AssertionError(
                    f"{self!r}: no {what} within {timeout}s; inbox: {self.inbox!r}"
                ) from None

    def take(self, accept: Callable[[Frame], bool]) -> list[Frame]:
        """Take out every frame received so far that ``accept`` takes."""
        taken = [frame for frame in self.inbox if accept(frame)]
        self.inbox = [frame for frame in self.inbox if not accept(frame)]
        return taken

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def request(self, event: str, timeout: float = TIMEOUT, **fields: Any) -> Frame:
        self._next_id += 1
        message_id = self._next_id
        await self.send({"event": event, "messageId": message_id, **fields})
        return await self.next(
            lambda f: f.get("context") == "response" and f.get("messageId") == message_id,
            timeout,
            what=f"the reply to {event} #{message_id}",
        )

    async def action(self, name: str, /, **params: Any) -> Frame:
        return await self.request("action", params={"action": name, **params})

    async def join(self, room: str) -> None:
        reply = await self.request("roomAdd", room=room)
        assert reply.get("status") == "OK", f"{self!r} could not join {room}: {reply}"

    async def say(self, room: str, message: Any) -> None:
        reply = await self.request("say", room=room, message=message)
        assert reply.get("status") == "OK", f"{self!r} could not say in {room}: {reply}"

    async def said(self, room: str, message: Any, timeout: float = TIMEOUT) -> Frame:
        """The next room message ``message`` in ``room``."""
        return await self.next(
            lambda f: is_said(f, room, message), timeout, what=f"{message!r} in {room}"
        )

    def count_said(self, room: str, message: Any) -> int:
        """How many copies of ``message`` in ``room`` are in the inbox (taking them out)."""
        return len(self.take(lambda f: is_said(f, room, message)))

    async def wait_closed(self, timeout: float = TIMEOUT) -> int | None:
        try:
            await asyncio.wait_for(self._closed.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self!r} still open after {timeout}s") from None
        return self.close_code

    async def close(self) -> None:
        await self.ws.close()
        await self._reader


def is_said(frame: Frame, room: str, message: Any) -> bool:
    return (
        frame.get("context") == "user"
        and frame.get("room") == room
        and frame.get("message") == message
    )


async def open_client(server: SquallServer) -> Client:
    """Connect, take the welcome frame, and learn the connection id (detailsView)."""
    ws = await connect(server.ws_url, open_timeout=TIMEOUT, ping_interval=None, max_size=None)
    client = Client(ws, server)
    await client.next(lambda f: f.get("context") == "api" and "welcome" in f, what="welcome")
    details = await client.request("detailsView")
    client.id = details["data"]["id"]
    return client


# --- waiting on state that has no event ---------------------------------------------------------


async def eventually(
    fetch: Callable[[], Any], accept: Callable[[Any], bool], timeout: float, what: str
) -> Any:
    """Poll ``fetch()`` (sync or async; every 100 ms at most) until ``accept`` takes its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if inspect.isawaitable(value):
            value = await value
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not so after {timeout}s; last value: {value!r}")
        await asyncio.sleep(POLL)  # poll interval: this state has no event to await


class Near:
    """An int within ``slack`` of ``center``, compared with ==."""

    def __init__(self, center: float, slack: float) -> None:
        self.center = center
        self.slack = slack

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, int)
            and not isinstance(other, bool)
            and abs(other - self.center) <= self.slack
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<int near {self.center:.0f} ± {self.slack:.0f}>"


def now_ms(slack_ms: float = 30_000) -> Near:
    return Near(time.time() * 1000, slack_ms)


async def kill_worker_of(client: Client) -> int:
    """SIGKILL the ``--workers`` worker holding ``client``, once it is old enough not to count
    as a failed start (the supervisor then replaces it); its pid, after the socket closed."""
    pid = int((await client.action("status"))["id"].rpartition("-")[2])
    await eventually(
        lambda: client.action("status"),
        lambda status: status["uptime"] > MIN_LIFETIME * 1000,
        BOOT_TIMEOUT,
        "worker older than the supervisor's MIN_LIFETIME",
    )
    os.kill(pid, signal.SIGKILL)
    await client.wait_closed()
    return pid


#: How many connections may land on one worker before a test gives up finding the other.
ATTEMPTS = 30


async def one_client_per_worker(
    server: SquallServer, connect: Callable[[SquallServer], Any], workers: int = 2
) -> dict[str, Client]:
    """Connect until a client sits on each of the ``--workers`` (the kernel spreads connections
    over them); ``{worker id: client}``."""
    by_worker: dict[str, Client] = {}
    for _ in range(ATTEMPTS):
        client = await connect(server)
        by_worker.setdefault((await client.action("status"))["id"], client)
        if len(by_worker) == workers:
            return by_worker
    raise AssertionError(f"{ATTEMPTS} connections all went to {set(by_worker)}")
