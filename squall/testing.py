"""Test an application's actions in-process, as ActionHero's specHelper does: no port, no socket.

:class:`Harness` boots the application of a project folder (its ``config/``, its drop-in folders,
its ``public/``) exactly as ``server.py`` does, minus the listening port, and drives it the way
the transports do::

    from squall.testing import Harness

    async def test_hello():
        async with Harness("path/to/project") as squall:
            reply = await squall.run("hello", {"name": "Ada"})
            assert reply.status == 200
            assert reply["greeting"] == "Hello, Ada!"

            socket = await squall.connect()
            await socket.room_add("defaultRoom")
            await socket.say("defaultRoom", "hi")
            said = await socket.next(lambda frame: frame.get("context") == "user")

With Squall installed, pytest has the ``squall`` fixture (``squall.pytest_plugin``): a started
:class:`Harness` of the project pytest runs in.

- :meth:`Harness.run` is an HTTP request: a ``web`` connection runs one action, and the reply is
  what the HTTP body would hold (without ``serverInformation`` and ``requesterInformation``),
  with the HTTP status.
- :meth:`Harness.connect` opens a :class:`Socket`: every verb of PROTOCOL.md §2.1 with its
  reply, and every frame pushed to it (welcome, say, presence, ``connection.send``) collected.

Everything a request or a reply carries goes through JSON on the way, as on the wire, so a
reply that would not survive the wire does not pass here either.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from . import codec
from .actions import Action
from .app import Squall
from .config import load_config
from .connections import Connection
from .errors import ActionLoadError, UnencodableReply, http_status_of
from .fingerprints import new_fingerprint

__all__ = ["Harness", "Reply", "Socket", "SocketClosed"]

log = logging.getLogger("squall.testing")

#: How long, in seconds, a harness waits for a reply or a frame before failing the test.
TIMEOUT = 5.0 * float(os.environ.get("SQUALL_TESTS_TIMEOUT_FACTOR", "1"))

Frame = dict[str, Any]


class SocketClosed(ConnectionError):
    """A verb was sent on a socket the server has closed (or the test closed)."""


class Reply(dict[str, Any]):
    """An action's reply as the HTTP body holds it, plus the HTTP ``status`` it came with and
    the ``fingerprint`` of the request (its browser: :meth:`Harness.session` reads its session)."""

    def __init__(self, fields: Mapping[str, Any], status: int, fingerprint: str) -> None:
        super().__init__(fields)
        self.status = status
        self.fingerprint = fingerprint

    @property
    def error(self) -> str | None:
        """The reply's ``error`` (None on success)."""
        return self.get("error")

    def __repr__(self) -> str:
        return f"<Reply {self.status} {dict(self)!r}>"


class Harness:
    """One application, booted in-process from its project folder.

    Args:
        root: the project folder (holding ``config/``, the drop-in folders and ``public/``).
        env: the environment; ``config/<env>.yaml`` is merged over ``config/default.yaml``.
        config: options set last, by dotted key (``{"general.sessionTtl": 1000}``).
        config_files: further YAML files merged before ``config`` (as ``--config`` does).
        actions: actions for this harness only, added to those the drop-in folders declare
            (a test's own probe of a middleware, say); checked as the loader checks them.

    Use it as ``async with Harness(root) as squall: ...``, or call :meth:`start` and
    :meth:`stop`. Booting runs what ``server.py`` runs before it opens the port (drop-in files,
    initializers, starting rooms); stopping closes the sockets it opened and stops the app.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] = ".",
        env: str = "test",
        config: Mapping[str, Any] | None = None,
        config_files: Iterable[str | os.PathLike[str]] = (),
        actions: Iterable[Action] = (),
    ) -> None:
        self.root = Path(root).resolve()
        self.env = env
        self.overrides = dict(config or {})
        self.config_files = [Path(path) for path in config_files]
        self.actions = list(actions)
        self._app: Squall | None = None
        self._sockets: list[Socket] = []
        self._ports = itertools.count(40000)

    @property
    def app(self) -> Squall:
        """The running :class:`~squall.Squall`: ``app.rooms``, ``app.state``, ``app.send_to``..."""
        if self._app is None:
            raise RuntimeError("the harness is not started: use 'async with Harness(...)'")
        return self._app

    async def start(self) -> Harness:
        if self._app is not None:
            raise RuntimeError("the harness is already started")
        environ = {k: v for k, v in os.environ.items() if k != "PORT"}  # there is no port
        config = load_config(self.root, self.env, self.config_files, self.overrides, environ)
        app = Squall(config)
        for declared in self.actions:
            _add_action(app, declared)
        await app.start()
        self._app = app
        return self

    async def stop(self) -> None:
        """Close every socket still open (as their peers would), then stop the app."""
        app, self._app = self._app, None
        if app is None:
            return
        for socket in self._sockets:
            await socket.close()
        await app.stop()

    async def __aenter__(self) -> Harness:
        return await self.start()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- HTTP ------------------------------------------------------------------------------------

    async def run(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        *,
        fingerprint: str | None = None,
        session: Mapping[str, Any] | None = None,
        api_version: Any = None,
    ) -> Reply:
        """Run ``action`` as one HTTP request would (PROTOCOL.md §3 statuses).

        Args:
            action: the action's name.
            params: its params, as a JSON body sends them.
            fingerprint: the browser's ``sessionID`` cookie; None is a browser without one.
            session: what that browser's session holds when the request comes (as if an
                earlier request had stored it); the action's changes are saved as usual.
            api_version: the ``apiVersion`` to call (default: the latest).
        """
        app = self.app
        if not app.config.get("servers.web.enabled"):
            raise RuntimeError("servers.web.enabled is false: this app serves no HTTP actions")
        sent: dict[str, Any] = _through_json(dict(params or {}))
        sent["action"] = action
        if api_version is not None:
            sent["apiVersion"] = api_version
        fingerprint = fingerprint or new_fingerprint()
        if session is not None:
            await app.sessions.write(fingerprint, _through_json(dict(session)))
        connection = Connection("web", "127.0.0.1", next(self._ports), fingerprint=fingerprint)
        app.connections.add(connection)
        try:
            result = await app.processor.process(connection, sent)
        finally:
            app.connections.remove(connection)
        status = 200 if result.error is None else http_status_of(result.error)
        try:
            fields = codec.loads(codec.dumps(result.response))
        except (TypeError, ValueError, RecursionError) as exc:
            log.error("the reply of %s could not be encoded as JSON: %s", action, exc)
            text = UnencodableReply(type(exc).__name__).render(app.messages)
            return Reply({"error": text}, 500, fingerprint)
        return Reply(fields, status, fingerprint)

    async def session(self, fingerprint: str) -> dict[str, Any]:
        """What the session of ``fingerprint`` holds now (a copy; {} when there is none)."""
        return await self.app.sessions.read(fingerprint)

    # -- WebSocket -------------------------------------------------------------------------------

    async def connect(self, fingerprint: str | None = None) -> Socket:
        """Open a socket as a browser would: connection middleware runs, the welcome is pushed.
        Give the ``fingerprint`` of earlier requests (``reply.fingerprint``) to share their
        session, as a page's socket does.

        A ``create`` middleware that refuses leaves the socket closed with 4001 and its message
        (``socket.close_code``, ``socket.close_reason``), as PROTOCOL.md §6 says.
        """
        app = self.app
        if not app.config.get("servers.websocket.enabled"):
            raise RuntimeError("servers.websocket.enabled is false: this app serves no socket")
        socket = Socket(app, fingerprint, next(self._ports))
        self._sockets.append(socket)
        await socket.open()
        return socket


class Socket:
    """A simulated WebSocket of one :class:`Harness`: verbs in, replies and pushed frames out.

    Each verb method sends one frame (with the next ``messageId``) and returns its reply, as
    the wire would carry it. Frames the server pushes (welcome, say, presence, server pushes)
    are kept in :attr:`pushed`, in order, and handed out once each by :meth:`next`.
    """

    def __init__(self, app: Squall, fingerprint: str | None, port: int) -> None:
        self.app = app
        self.connection = Connection(
            "webSocket", "127.0.0.1", port, fingerprint=fingerprint, transport=_Wire(self)
        )
        #: Every frame pushed to this socket so far, decoded, oldest first.
        self.pushed: list[Frame] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._inbox: list[Frame] = []
        self._arrived = asyncio.Event()
        self._message_ids = itertools.count(1)
        self._cleanup: asyncio.Task[None] | None = None

    @property
    def id(self) -> str:
        return self.connection.id

    @property
    def closed(self) -> bool:
        return self.close_code is not None

    async def open(self) -> None:
        try:
            await self.app.lifecycle.open(self.connection)
        except Exception as exc:
            self._server_closed(4001, str(exc) or "refused")
            return
        if not self.connection.closed:
            welcome = self.app.config.get("general.welcomeMessage")
            self.connection.send({"context": "api", "welcome": welcome})

    def _received(self, payload: bytes) -> None:
        frame = codec.loads(payload)
        self.pushed.append(frame)
        self._inbox.append(frame)
        self._arrived.set()

    def _server_closed(self, code: int, reason: str) -> None:
        """``destroy()``, ``quit`` or a refused ``create``: the server closes the socket."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            self._arrived.set()
            self._cleanup = self.app.lifecycle.close(self.connection)

    # -- verbs -----------------------------------------------------------------------------------

    async def send(self, frame: Mapping[str, Any] | str | bytes) -> Frame | None:
        """Send one raw frame (a mapping is JSON-encoded, ``messageId`` added when absent) and
        return what the server answers to it: a reply, an error push, or None (``quit``)."""
        if self.closed:
            raise SocketClosed(f"the socket is closed ({self.close_code} {self.close_reason})")
        if isinstance(frame, Mapping):
            frame = {"messageId": next(self._message_ids), **frame}
            data: str | bytes = codec.dumps(frame).decode()
        else:
            data = frame
        reply = self.app.protocol.receive(self.connection, data)
        if inspect.isawaitable(reply):
            # awaited in this task, as the pump does: frames that must follow the reply (a
            # joiner's own presence join, its live messages) come after it here too
            async with asyncio.timeout(TIMEOUT):
                reply = await reply
        if reply is None:
            return None
        return codec.loads(self.app.protocol.encode(reply))

    async def request(self, event: str, **fields: Any) -> Frame:
        reply = await self.send({"event": event, **fields})
        if reply is None:
            raise SocketClosed(f"{event} closed the socket ({self.close_code})")
        return reply

    async def action(self, name: str, params: Mapping[str, Any] | None = None) -> Frame:
        """Run an action over the socket; the reply holds its fields (and ``error``)."""
        return await self.request("action", params={**(params or {}), "action": name})

    async def say(self, room: str, message: Any) -> Frame:
        return await self.request("say", room=room, message=message)

    async def room_add(self, room: str, since: Mapping[str, Any] | None = None) -> Frame:
        """Join ``room``; with ``since`` (``{"offset", "epoch"}`` of the last message seen),
        the reply's ``data`` holds what was missed (PROTOCOL.md §9)."""
        extra = {} if since is None else {"since": since}
        return await self.request("roomAdd", room=room, **extra)

    async def room_leave(self, room: str) -> Frame:
        return await self.request("roomLeave", room=room)

    async def room_view(self, room: str) -> Frame:
        return await self.request("roomView", room=room)

    async def room_history(self, room: str, limit: int | None = None) -> Frame:
        """The last ``limit`` kept messages of ``room`` (PROTOCOL.md §9)."""
        extra = {} if limit is None else {"limit": limit}
        return await self.request("roomHistory", room=room, **extra)

    async def details_view(self) -> Frame:
        return await self.request("detailsView")

    async def file(self, path: str) -> Frame:
        return await self.request("file", file=path)

    async def documentation(self) -> Frame:
        return await self.request("documentation")

    async def ping(self) -> Frame:
        return await self.request("ping")

    async def quit(self) -> None:
        """The ``quit`` verb: the server closes the socket with 4000."""
        await self.send({"event": "quit"})
        await self._cleaned_up()

    # -- pushed frames ---------------------------------------------------------------------------

    @property
    def presence(self) -> list[Frame]:
        """The presence frames pushed so far (joins and leaves, PROTOCOL.md §8), oldest first."""
        return [frame for frame in self.pushed if frame.get("context") == "presence"]

    async def next(
        self, match: Callable[[Frame], bool] | None = None, timeout: float = TIMEOUT
    ) -> Frame:
        """Take the oldest pushed frame not taken yet that ``match`` accepts (any, without),
        waiting up to ``timeout`` seconds for it to come.

        Raises:
            AssertionError: nothing matching came in time, or the socket closed first.
        """
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for index, frame in enumerate(self._inbox):
                        if match is None or match(frame):
                            return self._inbox.pop(index)
                    if self.closed:
                        raise AssertionError(
                            f"socket closed ({self.close_code} {self.close_reason!r}) with no "
                            f"matching frame; not taken: {self._inbox}"
                        )
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            raise AssertionError(
                f"no matching frame in {timeout}s; not taken: {self._inbox}"
            ) from None

    async def close(self) -> None:
        """The peer goes away: leave middleware and ``destroy`` middleware run, as on a real
        disconnect; returns once they have."""
        self._server_closed(1000, "closed by the test")
        await self._cleaned_up()

    async def _cleaned_up(self) -> None:
        if self._cleanup is not None:
            await asyncio.wait_for(asyncio.shield(self._cleanup), TIMEOUT)


class _Wire:
    """The :class:`~squall.connections.Transport` of a :class:`Socket`: what the server writes
    is decoded and collected, a close it asks for is recorded and cleaned up. Like a real
    socket, it may only be used from the event loop's thread: anything else is a bug it
    reports, where a real server would corrupt its stream."""

    def __init__(self, socket: Socket) -> None:
        self.socket = socket
        self.thread = threading.get_ident()

    def _check_thread(self, what: str) -> None:
        if threading.get_ident() != self.thread:
            raise RuntimeError(
                f"{what} from thread {threading.current_thread().name}, not the event loop's: "
                "hand it to the loop (as connection.send and connection.destroy do)"
            )

    def write_frame(self, payload: bytes) -> None:
        self._check_thread("a frame was written to a socket")
        self.socket._received(payload)

    def close(self, code: int, reason: str) -> None:
        self._check_thread("a socket was closed")
        self.socket._server_closed(code, reason)


def _add_action(app: Squall, declared: Action) -> None:
    """Register a test's own action, refusing what the loader would refuse at boot."""
    problems = declared.problems()
    known = {m.name for m in app.processor.middleware}
    problems += [
        f"action {declared.name!r} names middleware {name!r}, which no file declares"
        for name in declared.middleware
        if name not in known
    ]
    if problems:
        raise ActionLoadError(declared.source, "; ".join(problems))
    try:
        app.actions.add(declared)
    except ValueError as exc:
        raise ActionLoadError(declared.source, str(exc)) from None


def _through_json(value: Any) -> Any:
    """``value`` as the server would decode it from the wire."""
    return codec.loads(codec.dumps(value))
