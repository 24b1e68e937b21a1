"""The core of one server: its parts, wired once, and their lifecycle. No Tornado here.

:class:`Squall` loads the drop-in folders, builds the registry of connections, the rooms, the
broker, the action processor and the socket protocol, and exposes what server code needs:
``app.rooms``, ``app.connections``, ``app.send_to(id, message)``, ``app.send_all(message)``.
Transports (``handlers/``) open and close connections through ``app.lifecycle``
(:mod:`squall.lifecycle`); ``server.py`` calls :meth:`Squall.start` and :meth:`Squall.stop`.
The broker delivers to the rooms and to the registry of connections directly: nothing flows
back through here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import socket
import time
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .admission import AddressCounts
from .broker import Broker, MemoryBroker
from .client import render_client
from .config import Config
from .connections import ConnectionRegistry
from .errors import ConfigError, ErrorMessages, SquallError
from .files import PublicFiles
from .initializers import Initializers
from .lifecycle import Lifecycle
from .loader import load_folders
from .logs import RecentErrors
from .loopsafe import LoopCalls, ServerRooms
from .metrics import Stats, rss_bytes
from .middleware import by_priority
from .monitor import Monitor, SharedSnapshots
from .processor import ActionProcessor
from .protocol import SocketProtocol
from .room_options import parse_room_options
from .rooms import Rooms, valid_room_name
from .sessions import MemorySessionStore, RedisSessionStore, Sessions, SessionStore, with_sessions
from .threads import ActionThreads
from .watchdog import LoopWatchdog

__all__ = ["Squall"]

log = logging.getLogger("squall")

SQUALL_VERSION = "0.1.0"


def make_broker(config: Config, server_id: str) -> Broker:
    """The in-memory broker, or Redis when ``redis.enabled`` (or ``SQUALL_REDIS_URL``) says so."""
    if not config.get("redis.enabled"):
        return MemoryBroker()
    from .redis_broker import RedisBroker  # redis-py is only needed when Redis is on

    return RedisBroker(
        url=config.get("redis.url"),
        server_id=server_id,
        cluster=config.get("redis.clusterName"),
        lease_ms=config.get("redis.leaseTimeout"),
        canary_ms=config.get("redis.canaryInterval"),
        outbox_messages=config.get("redis.outboxSize"),
        outbox_bytes=config.get("redis.outboxBytes"),
    )


def make_session_store(config: Config) -> SessionStore:
    """Sessions in memory, or in Redis (the broker's URL) when Redis is enabled (PROTOCOL §4)."""
    if not config.get("redis.enabled"):
        return MemorySessionStore()
    return RedisSessionStore(config.get("redis.url"), config.get("redis.clusterName"))


def outage_errors(config: Config) -> tuple[type[BaseException], ...]:
    """The exceptions that mean the broker's backend is unreachable (see ErrorMessages)."""
    if not config.get("redis.enabled"):
        return ()
    from redis.exceptions import RedisError

    return (RedisError,)


class Squall:
    """One server's core. Build it from a :class:`~squall.config.Config`, then ``await start()``.

    ``shared_metrics`` is the folder where ``--workers`` share their metrics, so that each
    answers ``/metrics`` and the admin page for the whole machine.

    Raises:
        ActionLoadError: a drop-in file is broken (the boot stops, naming the file).
    """

    version = SQUALL_VERSION

    def __init__(self, config: Config, shared_metrics: Path | None = None) -> None:
        self.config = config
        general = config["general"]
        self.id: str = general["id"] or f"{socket.gethostname()}-{os.getpid()}"
        self.name: str = general["serverName"]
        #: what ``status`` says of this server that never changes, made once
        self._identity = {
            "id": self.id,
            "name": self.name,
            "version": SQUALL_VERSION,
            "apiVersion": general["apiVersion"],
        }
        self.started_at = time.time()
        self.stats = Stats()
        self.messages = ErrorMessages(
            config["errors"],
            expose_errors=general["exposeErrors"],
            outages=outage_errors(config),
        )
        paths = general["paths"]
        # initializers/ folders are optional: only those present are loaded
        initializer_folders = [config.root / folder for folder in paths["initializers"]]
        loaded = load_folders(
            [
                *(config.root / folder for folder in paths["actions"]),
                *(folder for folder in initializer_folders if folder.is_dir()),
            ]
        )
        self.initializers = Initializers(loaded.initializers)
        self.actions = loaded.actions
        self.connection_middleware = by_priority(loaded.connection_middleware)
        self.connections = ConnectionRegistry()
        self.broker = make_broker(config, self.id)
        self.sessions = Sessions(
            make_session_store(config), general["sessionTtl"], general["sessionMaxBytes"]
        )
        rooms = Rooms(
            self.broker,
            with_sessions(loaded.chat_middleware, self.sessions),
            self.messages,
            max_name_length=general["maxRoomNameLength"],
            max_rooms=general["maxRooms"],
            empty_room_ttl_ms=general["emptyRoomTtl"],
            stats=self.stats,
            defaults=parse_room_options(general["roomDefaults"]),
        )
        self._rooms = rooms
        #: The server API (rooms, send_to, send_all) starts its work on the loop from anywhere.
        self.calls = LoopCalls()
        self.rooms = ServerRooms(rooms, self.calls)
        #: the threads of plain-def actions (general.actionThreads)
        self.executor = ActionThreads(general["actionThreads"])
        self.processor = ActionProcessor(
            registry=self.actions,
            middleware=loaded.action_middleware,
            messages=self.messages,
            simultaneous_actions=general["simultaneousActions"],
            timeout_ms=general["actionTimeout"],
            threads=self.executor,
            app=self,
            stats=self.stats,
            sessions=self.sessions,
        )
        self.public_dir = config.path("general.paths.public")
        self.files = PublicFiles(self.public_dir, config.get("servers.web.directoryFileType"))
        socket_options = config["servers"]["websocket"]["server"]
        self.protocol = SocketProtocol(
            self.processor,
            rooms,
            self.files,
            self.actions,
            self.messages,
            rate_limit=socket_options["rateLimit"],
            rate_burst=socket_options["rateBurst"],
            max_pending=general["simultaneousRequests"],
            stats=self.stats,
        )
        blocked_ms = general["blockedLoopWarning"]
        self.watchdog = LoopWatchdog(blocked_ms, self.actions) if blocked_ms else None
        #: What the application opens at boot (a pool, a client), for actions as data.app.state.
        self.state = SimpleNamespace()
        #: The last errors logged, for the admin page (collected while the monitor runs).
        self.recent_errors = RecentErrors()
        watched = config.get("servers.web.metrics.enabled") or config.get("servers.web.admin.token")
        shared = SharedSnapshots(shared_metrics) if shared_metrics is not None else None
        self.monitor = Monitor(self, shared) if watched else None
        metrics_on = config.get("servers.web.metrics.enabled")
        self.exporter = _exporter(self.monitor) if metrics_on else None
        #: sockets per client address (maxConnectionsPerAddress), counted by the transport
        self.addresses = AddressCounts(socket_options["maxConnectionsPerAddress"])
        #: how transports open and close connections
        self.lifecycle = Lifecycle(
            self.connections,
            rooms,
            self.broker,
            self.sessions,
            self.connection_middleware,
            self.protocol,
            self.messages,
        )
        self.stopping = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the broker, create the starting rooms, start the initializers, render the
        browser client.

        Raises:
            ActionLoadError: an initializer's ``start`` raised (naming its file); what was
                started is stopped again.
        """
        self.calls.bind(asyncio.get_running_loop())
        await self.broker.start(self._rooms, self.connections)
        self.sessions.start()
        if self.watchdog is not None:
            self.watchdog.start()
        if self.monitor is not None:
            self.recent_errors.install()
            self.monitor.start()
        starting = self.config.get("general.startingChatRooms") or {}
        for room in starting:
            if not valid_room_name(room, self.rooms.max_name_length):
                why = (
                    f"room name {room!r} must be 1 to {self.rooms.max_name_length} characters "
                    "without control characters (general.maxRoomNameLength)"
                )
                raise ConfigError("config", "general.startingChatRooms", why)
        await self._rooms.start(starting)
        try:
            await self.initializers.start(self)
        except Exception:
            self.rooms.stop()
            await self._stop_core()
            raise
        if self.config.get("servers.websocket.enabled"):
            for path in render_client(self.config.data, self.public_dir):
                log.debug("rendered %s", path)

    async def stop(self) -> None:
        """Stop after the transports have stopped accepting and closed their connections."""
        self.stopping = True
        self.rooms.stop()
        await self.lifecycle.wait_cleanups()
        await self.initializers.stop(self)  # after every connection's destroy middleware
        await self._stop_core()

    async def _stop_core(self) -> None:
        if self.monitor is not None:
            await self.monitor.stop()
            self.recent_errors.uninstall()
        await self.sessions.stop()
        await self.broker.stop()
        if self.watchdog is not None:
            self.watchdog.stop()
        self.executor.shutdown()

    async def drain(self) -> bool:
        """Refuse new actions and wait (``shutdownTimeout``) for those in flight."""
        return await self.processor.drain(self.config.get("general.shutdownTimeout"))

    # -- pushes, for server code ---------------------------------------------------------

    def send_to(self, connection_id: str, message: Any) -> asyncio.Task[bool] | Future[bool]:
        """Push ``message`` to a connection held by this or (with Redis) any other server.

        It is sent at once, from a coroutine or a thread alike; the returned future (await it,
        or ``.result()`` in a thread) says whether a connection of that id was found.
        """
        return self.calls.start(self._send_to(connection_id, message))

    async def _send_to(self, connection_id: str, message: Any) -> bool:
        if self.connections.deliver_to(connection_id, message):
            return True
        return await self.broker.send_to(connection_id, message)

    def send_all(self, message: Any) -> asyncio.Task[None] | Future[None]:
        """Push ``message`` to every connection of every server (at once; see ``send_to``)."""
        return self.calls.start(self.broker.send_all(message))

    # -- status ------------------------------------------------------------------------------

    def readiness_problem(self) -> str | None:
        """Why a load balancer should send this server no new clients now (``/ready`` answers
        503 with it): shutting down, or not fully in its cluster; None when it should."""
        if self.stopping or self.processor.stopping:
            return "the server is shutting down"
        return self.broker.problem

    def status(self) -> dict[str, Any]:
        """What the ``status`` action reports; ``state`` is ``degraded`` while the broker is
        not fully connected (Redis away: this server serves its own clients only)."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        problem = self.readiness_problem()
        return {
            "state": "degraded" if problem else "ok",
            "problems": [problem] if problem else [],
            **self._identity,
            "uptime": int((time.time() - self.started_at) * 1000),
            "connections": self.connections.counts(),
            "pendingActions": self.processor.in_flight,
            "actionThreads": self.executor.status(),
            "memory": {"rss": rss_bytes(), "maxRss": usage.ru_maxrss * 1024},
            "broker": self.broker.status(),
            "stopping": self.stopping,
        }


def _exporter(monitor: Monitor | None) -> Any:
    """The Prometheus exporter, whose library is the optional ``metrics`` extra."""
    try:
        from .exposition import MetricsExporter
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("prometheus_client"):
            raise
        raise SquallError(
            "servers.web.metrics.enabled is true but prometheus-client is not installed: "
            "pip install 'squall[metrics]'"
        ) from None
    assert monitor is not None  # metrics enabled means a monitor
    return MetricsExporter(monitor.machine)
