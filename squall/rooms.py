"""Chat rooms: existence, membership, chat middleware and fan-out (PROTOCOL.md §5).

Cluster-wide truth (which rooms exist, every member) lives in the broker. This server keeps an
index of its own members per room, so a broadcast costs O(members of that room here), never
O(all connections). A broadcast payload is encoded once and the same bytes are written to every
member, unless ``say`` middleware gives a recipient a copy of its own.

Bounds (PROTOCOL.md §5): a room name is a string of 1 to ``general.maxRoomNameLength``
characters without control characters (a NUL or a newline would break every encoding that
carries it, the Redis membership set first); at most ``general.maxRooms`` rooms exist; and a
*temporary* room (one a client created with ``createChatRoom``) is destroyed once it has had no
member for ``general.emptyRoomTtl`` ms, so clients cannot fill the server with rooms nobody uses.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterable
from typing import Any

from . import codec
from .broker import Broker
from .connections import Connection, now_ms
from .errors import (
    AlreadyInRoom,
    BrokerUnavailable,
    ErrorMessages,
    InvalidRoomName,
    NotInRoom,
    RoomDeleted,
    RoomNotExist,
    SayRequiresRoomAndMessage,
    TooManyRooms,
)
from .metrics import Stats
from .middleware import ChatMiddleware, by_priority, hooks, resolve

__all__ = ["SERVER_SENDER", "Rooms", "valid_room_name"]

log = logging.getLogger("squall.rooms")

#: The ``from`` of messages said by server code rather than a client (as ActionHero's mock id).
SERVER_SENDER = 0


#: C0 and C1 control characters and DEL (Unicode category Cc).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

#: The longest pause between two sweeps for empty temporary rooms, in seconds.
_SWEEP_AT_MOST_EVERY = 60.0


def valid_room_name(room: Any, max_length: int) -> bool:
    """A string of 1 to ``max_length`` characters, none of them a control character (§5)."""
    return isinstance(room, str) and 0 < len(room) <= max_length and _CONTROL.search(room) is None


class Rooms:
    """Rooms as the verbs, actions and server code use them.

    Server code: ``add``, ``destroy``, ``exists``, ``list``, ``members``, ``broadcast``.
    Connections: ``join``, ``leave``, ``view``, ``say``, ``leave_all``.
    The broker: it delivers here (:class:`~squall.broker.RoomsDelegate`); what it hands over
    never calls back into it.

    Args:
        broker: the cluster-wide rooms and delivery.
        middleware: every declared chat middleware.
        messages: the configured error texts.
        max_name_length: ``general.maxRoomNameLength``.
        max_rooms: ``general.maxRooms``; None: no bound.
        empty_room_ttl_ms: ``general.emptyRoomTtl``: how long a temporary room may stay empty
            before it is destroyed; None keeps temporary rooms forever.
    """

    def __init__(
        self,
        broker: Broker,
        middleware: Iterable[ChatMiddleware],
        messages: ErrorMessages,
        max_name_length: int = 128,
        max_rooms: int | None = None,
        empty_room_ttl_ms: int | None = None,
        stats: Stats | None = None,
    ) -> None:
        self.broker = broker
        self.messages = messages
        self.stats = stats if stats is not None else Stats()
        self.max_name_length = max_name_length
        self.max_rooms = max_rooms
        self.empty_room_ttl = empty_room_ttl_ms / 1000 if empty_room_ttl_ms else None
        # temporary room -> since when (monotonic) it has been empty; None while it has members
        self._temporary: dict[str, float | None] = {}
        self._sweep_timer: asyncio.TimerHandle | None = None
        self._sweeping: asyncio.Task[None] | None = None
        self._stopped = False
        ordered = by_priority(middleware)
        self._join = hooks(ordered, "join")
        self._leave = hooks(ordered, "leave")
        self._on_say_receive = hooks(ordered, "on_say_receive")
        self._say = hooks(ordered, "say")
        self._local: dict[str, dict[str, Connection]] = {}
        self._joined_at: dict[tuple[str, str], int] = {}
        self._starting: list[str] = []

    async def start(self, starting: Iterable[str]) -> None:
        """Create the rooms that exist from boot on (``general.startingChatRooms``). While the
        broker's backend is away they exist here now, and there once it is back (issue 11).

        Raises:
            InvalidRoomName: one of them is not a valid room name.
        """
        for room in starting:
            try:
                await self.add(room)
            except BrokerUnavailable:
                await self.broker.create_room(room)
            self._starting.append(room)

    # -- server API -----------------------------------------------------------------------

    async def add(self, room: str, *, temporary: bool = False) -> bool:
        """Create ``room``; False when it already exists.

        A ``temporary`` room is destroyed once it has stayed empty for ``general.emptyRoomTtl``
        (``createChatRoom`` makes its rooms so); other rooms live until destroyed. The server
        that created a temporary room is the one that reaps it.

        Raises:
            InvalidRoomName: not a string of 1 to ``maxRoomNameLength`` characters without
                control characters.
            TooManyRooms: ``general.maxRooms`` rooms exist already (cluster-wide).
        """
        self._check_name(room)
        if await self.broker.room_exists(room):
            return False
        if self.max_rooms is not None and len(await self.broker.list_rooms()) >= self.max_rooms:
            raise TooManyRooms()
        created = await self.broker.create_room(room)
        if created and temporary and self.empty_room_ttl is not None:
            self._temporary[room] = time.monotonic()
            if self._sweep_timer is None and self._sweeping is None and not self._stopped:
                self._schedule_sweep()
        return created

    async def destroy(self, room: str) -> bool:
        """Remove ``room``: members are told, then removed (leave middleware runs)."""
        if not valid_room_name(room, self.max_name_length):
            return False
        self._temporary.pop(room, None)
        return await self.broker.destroy_room(room)

    async def exists(self, room: str) -> bool:
        return valid_room_name(room, self.max_name_length) and await self.broker.room_exists(room)

    async def list(self) -> list[str]:
        return await self.broker.list_rooms()

    async def members(self, room: str) -> dict[str, dict[str, Any]]:
        """Every member, on every server: ``{id: {"id": id, "joinedAt": ms}}``."""
        found = await self.broker.members(room)
        return {cid: {"id": cid, "joinedAt": joined} for cid, joined in found.items()}

    async def broadcast(self, room: str, message: Any, sender: Any = SERVER_SENDER) -> None:
        """Say ``message`` in ``room`` from server code (no middleware ``on_say_receive``)."""
        await self.broker.publish(room, _payload(room, message, sender))
        self.stats.says += 1

    # -- connection API -------------------------------------------------------------------

    async def join(self, connection: Connection, room: Any) -> None:
        self._check_name(room)
        if room in connection.rooms:
            raise AlreadyInRoom(room)
        if not await self.broker.room_exists(room):
            raise RoomNotExist(room)
        for hook in self._join:
            await resolve(hook(connection, room))
        if room in connection.rooms:  # a concurrent roomAdd for the same room won
            raise AlreadyInRoom(room)
        joined_at = now_ms()
        connection.rooms.append(room)  # reserved before the broker is awaited
        try:
            await self.broker.add_member(room, connection.id, joined_at)
        except Exception:
            connection.rooms.remove(room)
            raise
        self._local.setdefault(room, {})[connection.id] = connection
        self._joined_at[(room, connection.id)] = joined_at
        if room in self._temporary:
            self._temporary[room] = None
        if connection.closed:  # it went away while the broker worked
            await self._remove(connection, room)

    async def leave(self, connection: Connection, room: Any) -> None:
        """Leave on request: leave middleware may block it."""
        await self._check_member(connection, room)
        for hook in self._leave:
            await resolve(hook(connection, room))
        await self._remove(connection, room)

    async def leave_all(self, connection: Connection) -> None:
        """Leave every room as the connection goes away: middleware runs but cannot block."""
        for room in list(connection.rooms):
            await self._forced_leave(connection, room)

    async def view(self, connection: Connection, room: Any) -> dict[str, Any]:
        await self._check_member(connection, room)
        members = await self.members(room)
        return {"room": room, "membersCount": len(members), "members": members}

    async def say(self, connection: Connection, room: Any, message: Any) -> None:
        if room is None or not isinstance(message, (str, dict)) or not message:
            raise SayRequiresRoomAndMessage()
        await self._check_member(connection, room)
        payload: dict[str, Any] | None = _payload(room, message, connection.id)
        for hook in self._on_say_receive:
            payload = await resolve(hook(connection, room, payload))
            if payload is None:
                return
        await self.broker.publish(room, payload)
        self.stats.says += 1

    # -- broker delegate (squall.broker.RoomsDelegate) ---------------------------------------

    async def deliver_room(self, room: str, frame: bytes) -> None:
        """Write an encoded room message to this server's members of ``room``.

        Without ``say`` middleware the very same bytes go to every member (encoded once, by
        whoever published). With it, each recipient gets its own copy, changed or dropped.
        """
        members = self._local.get(room)
        if not members:
            return
        if not self._say:
            self.stats.deliveries += len(members)
            for connection in list(members.values()):
                connection.send_encoded(frame)
            return
        payload = codec.loads(frame)
        for connection in list(members.values()):
            copy: dict[str, Any] | None = dict(payload)
            for hook in self._say:
                try:
                    copy = await resolve(hook(connection, room, copy))
                except Exception:
                    log.exception("say middleware failed for %s in %s", connection.id, room)
                    copy = None
                if copy is None:
                    break
            if copy is not None:
                self.stats.deliveries += 1
                connection.send(copy)

    def local_state(self) -> tuple[list[str], list[tuple[str, str, int]]]:
        """The rooms this server needs (its starting rooms, its members' rooms) and its
        memberships ``(room, connection id, joinedAt)``: what a lost Redis is rebuilt from."""
        memberships = [(room, cid, joined) for (room, cid), joined in self._joined_at.items()]
        rooms = {*self._starting, *(room for room, _, _ in memberships)}
        return sorted(rooms), memberships

    async def room_destroyed(self, room: str) -> None:
        """Tell this server's members of ``room`` it is gone, run their leave middleware and
        drop them here; the broker has removed their memberships already."""
        self._temporary.pop(room, None)
        members = self._local.get(room)
        if not members:
            return
        notice = codec.dumps(_payload(room, RoomDeleted().render(self.messages), SERVER_SENDER))
        for connection in list(members.values()):
            connection.send_encoded(notice)
            await self._run_leave_hooks(connection, room)
            self._drop(connection, room)

    def local_members(self, room: str) -> int:
        """How many of ``room``'s members this server holds."""
        return len(self._local.get(room, ()))

    def local_rooms(self) -> list[str]:
        """Rooms with at least one member on this server (what a cluster broker listens to)."""
        return list(self._local)

    # -- internals ------------------------------------------------------------------------

    def _check_name(self, room: Any) -> None:
        if not valid_room_name(room, self.max_name_length):
            raise InvalidRoomName()

    async def _check_member(self, connection: Connection, room: Any) -> None:
        self._check_name(room)
        if room not in connection.rooms:
            if not await self.broker.room_exists(room):
                raise RoomNotExist(room)
            raise NotInRoom(room)

    async def _forced_leave(self, connection: Connection, room: str) -> None:
        await self._run_leave_hooks(connection, room)
        await self._remove(connection, room)

    async def _run_leave_hooks(self, connection: Connection, room: str) -> None:
        """Leave middleware of a leave that must happen: a refusal is logged, not obeyed."""
        for hook in self._leave:
            try:
                await resolve(hook(connection, room))
            except Exception as exc:
                log.warning(
                    "leave middleware refused %s leaving %s while it must: %s",
                    connection.id,
                    room,
                    exc,
                )

    async def _remove(self, connection: Connection, room: str) -> None:
        self._drop(connection, room)
        await self.broker.remove_member(room, connection.id)

    def _drop(self, connection: Connection, room: str) -> None:
        """Forget the membership here (the broker's record is the caller's business)."""
        if room in connection.rooms:
            connection.rooms.remove(room)
        members = self._local.get(room)
        if members is not None:
            members.pop(connection.id, None)
            if not members:
                del self._local[room]
                if room in self._temporary:
                    self._temporary[room] = time.monotonic()
        self._joined_at.pop((room, connection.id), None)

    # -- reaping empty temporary rooms: one timer for all of them ---------------------------

    def stop(self) -> None:
        """Stop reaping (the server is stopping)."""
        self._stopped = True
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = None
        if self._sweeping is not None:
            self._sweeping.cancel()
            self._sweeping = None

    def _schedule_sweep(self) -> None:
        assert self.empty_room_ttl is not None
        every = min(_SWEEP_AT_MOST_EVERY, self.empty_room_ttl / 4)
        self._sweep_timer = asyncio.get_running_loop().call_later(every, self._start_sweep)

    def _start_sweep(self) -> None:
        self._sweep_timer = None
        self._sweeping = asyncio.ensure_future(self._sweep())

    async def _sweep(self) -> None:
        """Destroy the temporary rooms empty for ``emptyRoomTtl``. Only a room that looks
        empty here and past its time costs a broker call (its members may be elsewhere)."""
        assert self.empty_room_ttl is not None
        try:
            for room, empty_since in list(self._temporary.items()):
                now = time.monotonic()
                if room in self._local:
                    self._temporary[room] = None
                elif empty_since is None or now - empty_since >= self.empty_room_ttl:
                    await self._reap_if_empty(room, empty_since, now)
        except Exception as exc:  # a broker outage: the next sweep tries again
            log.warning("could not sweep empty rooms: %s", exc)
        finally:
            self._sweeping = None
            if self._temporary and not self._stopped:
                self._schedule_sweep()

    async def _reap_if_empty(self, room: str, empty_since: float | None, now: float) -> None:
        if await self.broker.members(room):
            self._temporary[room] = None  # members on other servers
        elif empty_since is None:
            self._temporary[room] = now  # they left there: empty from now on
        elif room in self._temporary:
            log.info("destroying room %s: empty for %.0f s", room, now - empty_since)
            await self.destroy(room)


def _payload(room: str, message: Any, sender: Any) -> dict[str, Any]:
    return {"context": "user", "message": message, "room": room, "from": sender, "sentAt": now_ms()}
