"""Chat rooms: existence, membership, chat middleware and fan-out (PROTOCOL.md §5).

Cluster-wide truth (which rooms exist, every member) lives in the broker. This server keeps an
index of its own members per room, so a broadcast costs O(members of that room here), never
O(all connections). A broadcast payload is encoded once and the same bytes are written to every
member, unless ``say`` middleware gives a recipient a copy of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from . import codec
from .broker import Broker
from .connections import Connection, now_ms
from .errors import (
    AlreadyInRoom,
    ErrorMessages,
    NotInRoom,
    RoomDeleted,
    RoomNotExist,
    RoomRequired,
    SayRequiresRoomAndMessage,
)
from .middleware import ChatMiddleware, by_priority, hooks, resolve

__all__ = ["SERVER_SENDER", "Rooms"]

log = logging.getLogger("squall.rooms")

#: The ``from`` of messages said by server code rather than a client (as ActionHero's mock id).
SERVER_SENDER = 0


def _valid_room(room: Any) -> bool:
    return isinstance(room, str) and room != ""


class Rooms:
    """Rooms as the verbs, actions and server code use them.

    Server code: ``add``, ``destroy``, ``exists``, ``list``, ``members``, ``broadcast``.
    Connections: ``join``, ``leave``, ``view``, ``say``, ``leave_all``.
    """

    def __init__(
        self, broker: Broker, middleware: Iterable[ChatMiddleware], messages: ErrorMessages
    ) -> None:
        self.broker = broker
        self.messages = messages
        ordered = by_priority(middleware)
        self._join = hooks(ordered, "join")
        self._leave = hooks(ordered, "leave")
        self._on_say_receive = hooks(ordered, "on_say_receive")
        self._say = hooks(ordered, "say")
        self._local: dict[str, dict[str, Connection]] = {}
        self._joined_at: dict[tuple[str, str], int] = {}

    # -- server API -----------------------------------------------------------------------

    async def add(self, room: str) -> bool:
        """Create ``room``; False when it already exists."""
        if not _valid_room(room):
            raise RoomRequired()
        return await self.broker.create_room(room)

    async def destroy(self, room: str) -> bool:
        """Remove ``room``: members are told, then removed (leave middleware runs)."""
        return await self.broker.destroy_room(room)

    async def exists(self, room: str) -> bool:
        return _valid_room(room) and await self.broker.room_exists(room)

    async def list(self) -> list[str]:
        return await self.broker.list_rooms()

    async def members(self, room: str) -> dict[str, dict[str, Any]]:
        """Every member, on every server: ``{id: {"id": id, "joinedAt": ms}}``."""
        found = await self.broker.members(room)
        return {cid: {"id": cid, "joinedAt": joined} for cid, joined in found.items()}

    async def broadcast(self, room: str, message: Any, sender: Any = SERVER_SENDER) -> None:
        """Say ``message`` in ``room`` from server code (no middleware ``on_say_receive``)."""
        await self.broker.publish(room, _payload(room, message, sender))

    # -- connection API -------------------------------------------------------------------

    async def join(self, connection: Connection, room: Any) -> None:
        if not _valid_room(room):
            raise RoomNotExist(room)
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
        if not _valid_room(room) or not isinstance(message, (str, dict)) or not message:
            raise SayRequiresRoomAndMessage()
        await self._check_member(connection, room)
        payload: dict[str, Any] | None = _payload(room, message, connection.id)
        for hook in self._on_say_receive:
            payload = await resolve(hook(connection, room, payload))
            if payload is None:
                return
        await self.broker.publish(room, payload)

    # -- broker delegate --------------------------------------------------------------------

    async def deliver_room(self, room: str, frame: bytes) -> None:
        """Write an encoded room message to this server's members of ``room``.

        Without ``say`` middleware the very same bytes go to every member (encoded once, by
        whoever published). With it, each recipient gets its own copy, changed or dropped.
        """
        members = self._local.get(room)
        if not members:
            return
        if not self._say:
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
                connection.send(copy)

    def local_memberships(self) -> list[tuple[str, str, int]]:
        """``(room, connection id, joinedAt)`` of every member here (to rebuild a lost Redis)."""
        return [(room, cid, joined) for (room, cid), joined in self._joined_at.items()]

    async def room_destroyed(self, room: str) -> None:
        members = self._local.get(room)
        if not members:
            return
        notice = codec.dumps(_payload(room, RoomDeleted().render(self.messages), SERVER_SENDER))
        for connection in list(members.values()):
            connection.send_encoded(notice)
            await self._forced_leave(connection, room)

    def local_members(self, room: str) -> int:
        """How many of ``room``'s members this server holds."""
        return len(self._local.get(room, ()))

    def local_rooms(self) -> list[str]:
        """Rooms with at least one member on this server (what a cluster broker listens to)."""
        return list(self._local)

    # -- internals ------------------------------------------------------------------------

    async def _check_member(self, connection: Connection, room: Any) -> None:
        if not _valid_room(room):
            raise RoomNotExist(room)
        if room not in connection.rooms:
            if not await self.broker.room_exists(room):
                raise RoomNotExist(room)
            raise NotInRoom(room)

    async def _forced_leave(self, connection: Connection, room: str) -> None:
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
        await self._remove(connection, room)

    async def _remove(self, connection: Connection, room: str) -> None:
        if room in connection.rooms:
            connection.rooms.remove(room)
        members = self._local.get(room)
        if members is not None:
            members.pop(connection.id, None)
            if not members:
                del self._local[room]
        self._joined_at.pop((room, connection.id), None)
        await self.broker.remove_member(room, connection.id)


def _payload(room: str, message: Any, sender: Any) -> dict[str, Any]:
    return {"context": "user", "message": message, "room": room, "from": sender, "sentAt": now_ms()}
