"""Shared fakes and builders for the unit tier: no sockets, no ports, no server process.

- :class:`RecordingTransport` stands in for the WebSocket handler: it records every frame
  written and every close asked for (websockets' ``RecordingProtocol``).
- :func:`feed` hands one frame to :meth:`SocketProtocol.receive` and returns the reply,
  awaiting it when the verb answers later.
- :func:`build_core` wires processor, rooms, memory broker and protocol from objects declared
  in the test itself; the ``make_app`` fixture builds a whole :class:`~squall.Squall` in a
  temporary application folder (its own ``config/``, ``actions/`` and ``public/``).
- :class:`Clock` is a clock the test moves, for histories and sessions that expire.

Every wait in this tier is bounded by :data:`TIMEOUT` seconds; nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import shutil
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from testkit import TIMEOUT

from squall import Squall, load_config
from squall.actions import Action, ActionRegistry
from squall.broker import MemoryBroker
from squall.connections import Connection, ConnectionRegistry
from squall.errors import DEFAULT_TEMPLATES, ErrorMessages
from squall.files import PublicFiles
from squall.middleware import ActionMiddleware, ChatMiddleware
from squall.processor import ActionProcessor
from squall.protocol import SocketProtocol
from squall.rooms import Rooms
from squall.testing import Harness
from squall.threads import ActionThreads

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "config"
DEFAULT_YAML = CONFIG_DIR / "default.yaml"


MESSAGES = ErrorMessages(DEFAULT_TEMPLATES)


def strict_json(data: bytes | str) -> Any:
    """Parse as a browser's ``JSON.parse`` would: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(data, parse_constant=refuse)


class RecordingTransport:
    """A transport that keeps what the core asked of it: frames written, closes requested."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.closes: list[tuple[int, str]] = []
        self.changed = asyncio.Event()  # set at every frame written

    def write_frame(self, payload: bytes) -> None:
        self.frames.append(payload)
        self.changed.set()

    async def until_frames(self, count: int) -> list[Any]:
        """Wait (at most :data:`TIMEOUT` seconds) until ``count`` frames were written; them all."""
        async with asyncio.timeout(TIMEOUT):
            while len(self.frames) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.pushed()

    def close(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))

    def pushed(self) -> list[Any]:
        """Every frame written so far, decoded."""
        return [json.loads(frame) for frame in self.frames]


def socket_connection(
    connection_id: str | None = None, fingerprint: str | None = None, port: int = 50000
) -> Connection:
    """A ``webSocket`` connection from 127.0.0.1 whose transport records everything."""
    return Connection(
        "webSocket",
        "127.0.0.1",
        port,
        fingerprint=fingerprint,
        transport=RecordingTransport(),
        connection_id=connection_id,
    )


def transport_of(connection: Connection) -> RecordingTransport:
    transport = connection.transport
    assert isinstance(transport, RecordingTransport)
    return transport


async def feed(protocol: SocketProtocol, connection: Connection, frame: Any) -> Any:
    """Send one frame (a dict/list is JSON-encoded; str and bytes go as they are); the reply."""
    data = frame if isinstance(frame, (str, bytes)) else json.dumps(frame)
    reply = protocol.receive(connection, data)
    if inspect.isawaitable(reply):
        reply = await asyncio.wait_for(_awaited(reply), TIMEOUT)
    return reply


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def start_feed(protocol: SocketProtocol, connection: Connection, frame: Any) -> asyncio.Task:
    """Like :func:`feed`, as a task, for verbs whose replies must be left pending."""
    return asyncio.get_running_loop().create_task(feed(protocol, connection, frame))


async def bounded(awaitable: Awaitable[Any]) -> Any:
    """Await with the tier's timeout."""
    return await asyncio.wait_for(_awaited(awaitable), TIMEOUT)


class Clock:
    """A clock the test moves (``clock.now += seconds``), for what expires: no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def declared(
    run: Callable[..., Any], name: str | None = None, version: float = 1, **options: Any
) -> Action:
    """An :class:`Action` for ``run`` (named after it by default)."""
    return Action(name=name or run.__name__, run=run, version=version, **options)


@dataclass(repr=False)
class Core:
    """Processor, rooms, memory broker and protocol, wired as :class:`Squall` wires them."""

    registry: ActionRegistry
    processor: ActionProcessor
    broker: MemoryBroker
    rooms: Rooms
    files: PublicFiles
    protocol: SocketProtocol
    threads: ActionThreads
    connections: list[Connection] = field(default_factory=list)

    def __repr__(self) -> str:  # short, for hypothesis' falsifying-example reports
        return f"<Core {len(self.registry)} actions, {len(self.connections)} connections>"

    def connect(self, connection_id: str | None = None) -> Connection:
        connection = socket_connection(connection_id, port=50000 + len(self.connections))
        self.connections.append(connection)
        return connection


async def build_core(
    public: Path,
    actions: Iterable[Action] = (),
    action_middleware: Iterable[ActionMiddleware] = (),
    chat_middleware: Iterable[ChatMiddleware] = (),
    rooms: Iterable[str] | Mapping[str, Any] = ("defaultRoom",),
    simultaneous_actions: int = 5,
    timeout_ms: int | None = None,
    messages: ErrorMessages = MESSAGES,
    rate_limit: float | None = None,
    rate_burst: int = 100,
    max_pending: int = 200,
    broker: MemoryBroker | None = None,
) -> Core:
    registry = ActionRegistry(actions)
    threads = ActionThreads(4, "unit-action")
    processor = ActionProcessor(
        registry=registry,
        middleware=action_middleware,
        messages=messages,
        simultaneous_actions=simultaneous_actions,
        timeout_ms=timeout_ms,
        threads=threads,
    )
    broker = broker or MemoryBroker()
    room_service = Rooms(broker, chat_middleware, messages)
    await broker.start(room_service, ConnectionRegistry())
    for room in rooms:
        await room_service.add(room, rooms.get(room) if isinstance(rooms, Mapping) else None)
    files = PublicFiles(public)
    protocol = SocketProtocol(
        processor,
        room_service,
        files,
        registry,
        messages,
        rate_limit=rate_limit,
        rate_burst=rate_burst,
        max_pending=max_pending,
    )
    return Core(registry, processor, broker, room_service, files, protocol, threads)


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def no_stray_logs(request: pytest.FixtureRequest) -> Iterator[None]:
    """Noise fails (an error nobody asserts is a bug nobody sees): a test that does not ask
    for ``caplog`` to assert its expected WARNING/ERROR lines must not make ``squall`` log
    any."""
    collector = _Collector()
    logger = logging.getLogger("squall")
    logger.addHandler(collector)
    try:
        yield
    finally:
        logger.removeHandler(collector)
    if "caplog" not in request.fixturenames:
        stray = [f"{r.name} {r.levelname}: {r.getMessage()}" for r in collector.records]
        assert stray == [], "unexpected log lines"


@pytest.fixture
def public(tmp_path: Path) -> Path:
    folder = tmp_path / "public"
    folder.mkdir()
    return folder


@pytest.fixture
async def make_core(public: Path) -> AsyncIterator[Callable[..., Awaitable[Core]]]:
    """``await make_core(actions=[...], ...)``: a :class:`Core` over the test's public folder."""
    built: list[Core] = []

    async def _make(**options: Any) -> Core:
        core = await build_core(public, **options)
        built.append(core)
        return core

    yield _make
    for core in built:
        await core.broker.stop()
        core.threads.shutdown()


def write_app(root: Path, files: dict[str, str] | None = None, extra_yaml: str = "") -> Path:
    """An application folder: the repository's config files, ``actions/`` and ``public/``.

    ``files`` maps paths relative to ``root`` to their (dedented) text. ``config/unit.yaml``
    switches the client renderer off (no socket is served here) and the blocked-loop watchdog
    (a loaded test machine must not make it speak); ``extra_yaml`` goes to
    ``config/extra.yaml``. Both are meant to be merged last, as ``--config`` files are.
    """
    (root / "config").mkdir(parents=True)
    for source in CONFIG_DIR.glob("*.yaml"):
        shutil.copy(source, root / "config" / source.name)
    (root / "actions").mkdir()
    (root / "public").mkdir()
    unit = "general:\n  blockedLoopWarning: null\nservers:\n  websocket:\n    enabled: false\n"
    (root / "config" / "unit.yaml").write_text(unit)
    (root / "config" / "extra.yaml").write_text(textwrap.dedent(extra_yaml))
    for relative, text in (files or {}).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.fixture
async def make_app(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Squall]]]:
    """``await make_app(files={...}, extra_yaml=...)``: a started :class:`Squall`, stopped after."""
    apps: list[Squall] = []

    async def _make(files: dict[str, str] | None = None, extra_yaml: str = "") -> Squall:
        root = write_app(tmp_path / f"app{len(apps)}", files, extra_yaml)
        extra = [root / "config" / "unit.yaml", root / "config" / "extra.yaml"]
        config = load_config(root, "test", extra, environ={})
        app = Squall(config)
        await app.start()
        apps.append(app)
        return app

    yield _make
    for app in apps:
        await app.stop()


@pytest.fixture
async def make_harness(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    """``await make_harness(files={...}, extra_yaml=...)``: a started
    :class:`~squall.testing.Harness` of a project written as ``make_app`` writes one (its folder
    is ``harness.root``), stopped after the test."""
    started: list[Harness] = []

    async def _make(files: dict[str, str] | None = None, extra_yaml: str = "") -> Harness:
        root = write_app(tmp_path / f"harnessed{len(started)}", files, extra_yaml)
        config = root / "config"
        harness = Harness(root, config_files=[config / "unit.yaml", config / "extra.yaml"])
        started.append(await harness.start())
        return harness

    yield _make
    for harness in started:
        await harness.stop()
