"""The server API, callable from anywhere: async actions, plain-def actions (threads), sync hooks.

Everything in a Squall server runs on one event loop, but a plain-def action runs in a thread of
the pool, and middleware hooks may be plain functions called on the loop. The server API a user
calls (``app.send_to``, ``app.send_all``, ``app.rooms.add/destroy/exists/list/members/
broadcast``) therefore follows one rule, whatever the caller:

- the work **starts at once**, on the loop (handed over safely from another thread with
  :func:`asyncio.run_coroutine_threadsafe`);
- the call returns a future: ``await`` it in a coroutine for the result (an
  :class:`asyncio.Task`), call ``.result()`` on it in a thread (a
  :class:`concurrent.futures.Future`), or drop it: the work is done anyway.

``connection.send()`` and ``connection.destroy()`` need no future: from a thread they are handed
to the loop the same way (see :mod:`squall.connections`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

from .errors import RoomNotExist
from .rooms import SERVER_SENDER, Rooms

__all__ = ["LoopCalls", "ServerRooms"]

T = TypeVar("T")


class LoopCalls:
    """Starts the server API's coroutines on the server's loop, from any thread."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._running: set[asyncio.Task[Any]] = set()  # the loop keeps only weak references

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the server runs on (set at start)."""
        self.loop = loop

    def start(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T] | Future[T]:
        """Run ``work`` on the loop now; its task (on the loop) or future (from a thread).

        Raises:
            RuntimeError: called from a thread while the server is not running.
        """
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None and (running is self.loop or self.loop is None):
            task = running.create_task(work)
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            return task
        if self.loop is None or self.loop.is_closed():
            work.close()
            raise RuntimeError("the server API was called from a thread while no server runs")
        return asyncio.run_coroutine_threadsafe(work, self.loop)


class ServerRooms:
    """``app.rooms`` as server code uses it: each call starts at once and returns a future
    (:class:`LoopCalls`). Everything else is the :class:`~squall.rooms.Rooms` it wraps."""

    def __init__(self, rooms: Rooms, calls: LoopCalls) -> None:
        self._rooms = rooms
        self._calls = calls

    def add(
        self, room: str, options: Mapping[str, Any] | None = None, *, temporary: bool = False
    ) -> asyncio.Task[bool] | Future[bool]:
        """Create ``room`` with ``options`` (``{"presence": bool, "history": {"size": n, "ttl":
        ms}}``; each one left out from ``general.roomDefaults``); the future says False when it
        already existed, and fails with :class:`~squall.errors.InvalidRoomOptions` naming an
        option that cannot be used."""
        return self._calls.start(self._rooms.add(room, options, temporary=temporary))

    def destroy(self, room: str) -> asyncio.Task[bool] | Future[bool]:
        """Remove ``room`` (its members are told, then leave); False when there was none."""
        return self._calls.start(self._rooms.destroy(room))

    def exists(self, room: str) -> asyncio.Task[bool] | Future[bool]:
        return self._calls.start(self._rooms.exists(room))

    def list(self) -> asyncio.Task[list[str]] | Future[list[str]]:
        """Every room, on every server."""
        return self._calls.start(self._rooms.list())

    def members(self, room: str) -> asyncio.Task[dict[str, Any]] | Future[dict[str, Any]]:
        """``{id: {"id": id, "joinedAt": ms, "info"?: {...}}}`` for every member, on every
        server."""
        return self._calls.start(self._rooms.members(room))

    def broadcast(
        self, room: str, message: Any, sender: Any = SERVER_SENDER
    ) -> asyncio.Task[None] | Future[None]:
        """Say ``message`` in ``room`` as server code (``from`` is ``sender``, 0 by default);
        the future fails with :class:`~squall.errors.RoomNotExist` when there is no such room."""
        return self._calls.start(self._broadcast(room, message, sender))

    async def _broadcast(self, room: str, message: Any, sender: Any) -> None:
        if not await self._rooms.exists(room):
            raise RoomNotExist(room)
        await self._rooms.broadcast(room, message, sender)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rooms, name)
