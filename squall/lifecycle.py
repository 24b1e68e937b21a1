"""A socket's life on this server, in one place: opened, announced, closed, cleaned up.

Transports call :meth:`Lifecycle.open` once the handshake is done and :meth:`Lifecycle.close`
on whatever ends the socket (the peer's close frame, a lost TCP connection, a slow reader
dropped, ``connection.destroy()``, the ``quit`` verb). Everything else happens here, in order:

1. open: the connection is registered (``send`` reaches it), its session loaded, ``create``
   middleware runs (and may refuse it), then the broker is told, so that ``send_to`` from
   another server finds it; unless it closed meanwhile (a peer that left during a slow
   ``create``), which must leave no trace in the broker;
2. close: it is forgotten at once (nothing more is written to it, and ``send_to`` on this
   server answers False), the broker forgets it first (so ``send_to`` from the other servers
   answers False one write later, not after its rooms are left), then it leaves its rooms
   (leave middleware runs), ``destroy`` middleware runs and its session is saved.
"""

from __future__ import annotations

import asyncio
import logging

from .broker import Broker
from .connections import Connection, ConnectionRegistry
from .errors import ConnectionRefused, ErrorMessages, is_own_cancellation
from .middleware import ConnectionMiddleware, resolve
from .protocol import SocketProtocol
from .rooms import Rooms
from .sessions import Sessions

__all__ = ["Lifecycle"]

log = logging.getLogger("squall")

#: How long ``stop`` waits for the cleanups still running (leave and destroy middleware).
CLEANUP_WAIT = 5.0


class Lifecycle:
    """Opens and closes the connections of one server.

    Args:
        registry: the live connections.
        rooms: left on close.
        broker: told which sockets this server holds.
        sessions: loaded on open, saved on close.
        middleware: connection middleware, by priority.
        protocol: forgets what it keeps per connection on close.
        messages: how a failing ``create`` hook is reported.
    """

    def __init__(
        self,
        registry: ConnectionRegistry,
        rooms: Rooms,
        broker: Broker,
        sessions: Sessions,
        middleware: list[ConnectionMiddleware],
        protocol: SocketProtocol,
        messages: ErrorMessages,
    ) -> None:
        self.registry = registry
        self.rooms = rooms
        self.broker = broker
        self.sessions = sessions
        self.middleware = middleware
        self.protocol = protocol
        self.messages = messages
        self._cleanups: set[asyncio.Task[None]] = set()

    async def open(self, connection: Connection) -> None:
        """Register a new connection, run ``create`` middleware, announce it to the broker.

        Raises:
            ConnectionRefused: a ``create`` hook raised; its text is the 4001 close reason, as
                :meth:`~squall.errors.ErrorMessages.report` decides (a bug is logged).
        """
        connection.on_destroy = self.close
        self.registry.add(connection)
        try:
            await self.sessions.open(connection)
            for middleware in self.middleware:
                if middleware.create is not None:
                    await resolve(middleware.create(connection))
            await self.sessions.save(connection)
        except BaseException as error:
            # Refused before it existed: no rooms to leave, no destroy middleware to run.
            connection.closed = True
            self.registry.remove(connection)
            self.sessions.revert(connection)
            await self.sessions.close(connection)
            if is_own_cancellation(error):
                raise
            text = self.messages.report(
                error, log, "connection middleware failed (connection %s)", connection.id
            )
            raise ConnectionRefused(text) from error
        # Checked and announced in one step: its close, later, is announced after this.
        if not connection.closed:
            await self.broker.connection_opened(connection.id)

    def close(self, connection: Connection) -> asyncio.Task[None] | None:
        """Forget a connection at once, then leave its rooms and run ``destroy`` middleware.

        Idempotent: a socket closed by the peer, by ``destroy()`` and by shutdown all end here.
        Returns the cleanup's task (None when the connection was already closed).
        """
        if connection.closed:
            return None
        connection.closed = True
        self.registry.remove(connection)
        self.protocol.forget(connection)
        task = asyncio.get_running_loop().create_task(self._cleanup(connection))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)
        return task

    async def wait_cleanups(self) -> None:
        """Let the cleanups under way finish (at most :data:`CLEANUP_WAIT` seconds)."""
        if self._cleanups:
            await asyncio.wait(list(self._cleanups), timeout=CLEANUP_WAIT)

    async def _cleanup(self, connection: Connection) -> None:
        try:
            await self.broker.connection_closed(connection.id)
            await self.rooms.leave_all(connection)
            for middleware in self.middleware:
                if middleware.destroy is not None:
                    await resolve(middleware.destroy(connection))
        except Exception:
            log.exception("cleaning up connection %s failed", connection.id)
        try:
            await self.sessions.close(connection)  # saves what destroy middleware changed
        except Exception:
            log.exception("saving the session of connection %s failed", connection.id)
