"""Connections, whatever carries them, and the registry of the live ones.

A :class:`Connection` is what actions and middleware see of a client: an HTTP request (type
``web``, alive for one request) or a WebSocket (type ``webSocket``). It knows nothing of Tornado:
the transport that owns the socket is handed in as a :class:`Transport`, so tests drive a
connection with a recording fake.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from . import codec
from .fingerprints import new_fingerprint

__all__ = ["CLOSE_DESTROYED", "Connection", "ConnectionRegistry", "Transport", "new_id"]

log = logging.getLogger("squall.connections")

#: Close code of ``connection.destroy()`` and the ``quit`` verb: the client must not reconnect.
CLOSE_DESTROYED = 4000


def new_id() -> str:
    """A random (version 4) UUID as text, as ``str(uuid.uuid4())`` writes it, at a third of
    its cost (``uuid.UUID`` checks and converts what is random by construction); one per
    connection and HTTP request."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4 (RFC 4122 4.4)
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def now_ms() -> int:
    return int(time.time() * 1000)


class Transport(Protocol):
    """What a connection needs from whatever owns its socket."""

    def write_frame(self, payload: bytes) -> None:
        """Queue one encoded JSON frame for the peer; never blocks, never raises."""

    def close(self, code: int, reason: str) -> None:
        """Start closing the socket with a close code and reason."""


class Connection:
    """One client: its identity, its rooms, its counters and a way to push to it.

    ``session`` is the browser's session (:mod:`squall.sessions`); reading it sets
    ``session_used``, so a session no action or hook looked at costs nothing to save.
    ``send(obj)`` pushes a frame; it is silently dropped once the connection is closed, and for
    an HTTP connection (nothing to push to), where it is logged at debug level. ``send`` and
    ``destroy`` may be called from any thread (a plain-def action): the work is handed to the
    loop the connection was made on, in call order.
    """

    __slots__ = (
        "_loop_thread",
        "_session",
        "closed",
        "connected_at",
        "fingerprint",
        "id",
        "loop",
        "message_count",
        "on_destroy",
        "params",
        "pending_actions",
        "rate_bucket",
        "remote_ip",
        "remote_port",
        "rooms",
        "session_used",
        "total_actions",
        "transport",
        "type",
    )

    def __init__(
        self,
        type: str,
        remote_ip: str,
        remote_port: int,
        fingerprint: str | None = None,
        transport: Transport | None = None,
        connection_id: str | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.id = connection_id or new_id()
        self.type = type
        # never the id: other members see the id as ``from`` (PROTOCOL.md §4)
        self.fingerprint = fingerprint or new_fingerprint()
        self.remote_ip = remote_ip
        self.remote_port = remote_port
        self.connected_at = now_ms()
        self.rooms: list[str] = []
        self.params: dict[str, Any] = {}
        self._session: dict[str, Any] = {}
        #: ``session`` was read since the session was last saved: only then may it have changed
        self.session_used = False
        self.total_actions = 0
        self.pending_actions = 0
        self.message_count = 0
        self.transport = transport
        self.closed = False
        self.rate_bucket: list[float] | None = None
        self.on_destroy: Callable[[Connection], None] | None = None
        # Transports make connections on the server's loop and pass it (asking for the running
        # loop is a getpid() system call on Python 3.11); tests may make them anywhere.
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        self.loop = loop
        self._loop_thread = threading.get_ident() if loop is not None else None

    @property
    def session(self) -> dict[str, Any]:
        """The browser's session (PROTOCOL.md §4), shared by its HTTP requests and sockets."""
        self.session_used = True
        return self._session

    @session.setter
    def session(self, value: dict[str, Any]) -> None:
        self._session = value

    def _off_loop(self) -> bool:
        """True in another thread than the loop's: the work must be handed over."""
        return self._loop_thread is not None and threading.get_ident() != self._loop_thread

    def send(self, message: Any) -> None:
        """Push ``message`` (JSON-encodable) to this client as one frame, adding no keys."""
        payload = codec.dumps(message)
        if self._off_loop():
            self.loop.call_soon_threadsafe(self.send_encoded, payload)  # type: ignore[union-attr]
            return
        self.send_encoded(payload)

    def send_encoded(self, payload: bytes) -> None:
        """Push an already encoded frame (a broadcast encodes once for all members)."""
        if self.closed:
            return
        if self.transport is None:
            log.debug("dropped a push to HTTP connection %s: it has no socket", self.id)
            return
        self.transport.write_frame(payload)

    def destroy(self) -> None:
        """Close for good: the socket closes with 4000 and the client does not reconnect."""
        if self._off_loop():
            self.loop.call_soon_threadsafe(self.destroy)  # type: ignore[union-attr]
            return
        if self.closed:
            return
        if self.transport is not None:
            self.transport.close(CLOSE_DESTROYED, "connection destroyed")
        if self.on_destroy is not None:
            self.on_destroy(self)

    def details(self) -> dict[str, Any]:
        """The ``detailsView`` data (PROTOCOL.md §2.1)."""
        return {
            "id": self.id,
            "fingerprint": self.fingerprint,
            "type": self.type,
            "remoteIP": self.remote_ip,
            "remotePort": self.remote_port,
            "params": dict(self.params),
            "connectedAt": self.connected_at,
            "rooms": list(self.rooms),
            "totalActions": self.total_actions,
            "pendingActions": self.pending_actions,
        }

    def __repr__(self) -> str:
        return f"<Connection {self.type} {self.id} from {self.remote_ip}:{self.remote_port}>"


class ConnectionRegistry:
    """The live connections of this server, by id; exact at all times.

    A connection is added when it opens and removed when it closes, whatever the cause (close
    frame, TCP reset, server kick), so the counts in ``status`` can be trusted. It is the
    broker's :class:`~squall.broker.ConnectionsDelegate`: pushes for this server's
    connections, from any server, are delivered here.
    """

    def __init__(self) -> None:
        self._by_id: dict[str, Connection] = {}
        self._by_type: dict[str, int] = {}

    def add(self, connection: Connection) -> None:
        if connection.id not in self._by_id:
            self._by_type[connection.type] = self._by_type.get(connection.type, 0) + 1
        self._by_id[connection.id] = connection

    def remove(self, connection: Connection) -> None:
        if self._by_id.get(connection.id) is connection:
            del self._by_id[connection.id]
            self._by_type[connection.type] -= 1

    def get(self, connection_id: str) -> Connection | None:
        return self._by_id.get(connection_id)

    def __contains__(self, connection_id: object) -> bool:
        return connection_id in self._by_id

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)

    def count(self, type: str) -> int:
        """Live connections of one type (``web`` or ``webSocket``), in O(1)."""
        return self._by_type.get(type, 0)

    def counts(self) -> dict[str, int]:
        """Live connections by type, for ``status``."""
        return {"total": len(self._by_id), **self._by_type}

    # -- broker delegate (squall.broker.ConnectionsDelegate) ----------------------------------

    def deliver_to(self, connection_id: str, message: Any) -> bool:
        """Push ``message`` to the socket ``connection_id`` if this server holds it."""
        connection = self._by_id.get(connection_id)
        if connection is None or connection.transport is None:
            return False
        connection.send(message)
        return True

    def deliver_all(self, message: Any) -> None:
        """Push ``message`` to every connection here, encoded once."""
        frame = codec.dumps(message)
        for connection in list(self._by_id.values()):
            connection.send_encoded(frame)

    def local_connections(self) -> list[str]:
        """Ids of the sockets this server holds (HTTP requests cannot be pushed to)."""
        return [c.id for c in self._by_id.values() if c.transport is not None]
