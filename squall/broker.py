"""Fan-out between servers, behind one interface: in memory (the default) or through Redis.

The broker owns what is shared by every server of a cluster: which rooms exist and with which
options, who is a member of each (cluster-wide, with ``joinedAt`` and public ``info``), the
numbering and history of rooms with history (PROTOCOL.md §9), and the delivery of room messages,
presence frames and pushes to the server that holds the recipient. It never touches a socket:
it hands deliveries to its :class:`RoomsDelegate` (this server's rooms) and
:class:`ConnectionsDelegate` (its connections).

:class:`MemoryBroker` serves a single process and needs nothing but Python;
``squall.redis_broker.RedisBroker`` makes several processes or machines act as one; while
Redis is away it keeps this server's rooms working and raises
:class:`~squall.errors.BrokerUnavailable` only for what cannot wait (an outage degrades a
server, it never stops it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from . import codec
from .history import NO_HISTORY, Kept, Recovery, RoomHistory
from .room_options import RoomOptions

__all__ = [
    "Broker",
    "ConnectionsDelegate",
    "Member",
    "Membership",
    "MemoryBroker",
    "RoomsDelegate",
]


class Member(NamedTuple):
    """A member of a room as every server sees it."""

    joined_at: int
    info: dict[str, Any] | None = None


class Membership(NamedTuple):
    """One of this server's memberships, as a broker writes it back into a store that lost it."""

    room: str
    connection_id: str
    joined_at: int
    info: dict[str, Any] | None = None


class RoomsDelegate(Protocol):
    """What a broker hands to this server's rooms (:class:`~squall.rooms.Rooms`).

    Deliveries flow one way, broker to rooms: nothing here calls back into the broker, so a
    broker never sees its own operations re-entered halfway through.
    """

    async def deliver_room(self, room: str, frame: bytes) -> None:
        """Give an encoded room message to this server's members of ``room``."""

    async def room_destroyed(self, room: str, members: list[str]) -> None:
        """``room`` is gone, its memberships already removed from the broker: tell this
        server's members and drop them here (leave middleware runs). ``members`` lists every
        member it had on every server, for their presence leaves (empty without presence)."""

    def local_state(self) -> tuple[dict[str, RoomOptions], list[Membership]]:
        """Rooms this server needs to exist (with their options), and its memberships.

        A broker whose shared store was lost (a Redis restarted without persistence) writes
        these back when it reconnects.
        """


class ConnectionsDelegate(Protocol):
    """What a broker hands to this server's registry of connections
    (:class:`~squall.connections.ConnectionRegistry`)."""

    def deliver_to(self, connection_id: str, message: Any) -> bool:
        """Push to a connection if this server holds it; False when it does not."""

    def deliver_all(self, message: Any) -> None:
        """Push to every connection this server holds."""

    def local_connections(self) -> list[str]:
        """Ids of the sockets this server holds (rewritten into a Redis that lost them)."""


class Broker(Protocol):
    """The cluster-wide state and delivery that :class:`~squall.rooms.Rooms` relies on."""

    #: Why this server is not fully part of its cluster right now (``/ready`` answers 503 with
    #: it), or None when it is.
    problem: str | None

    async def start(self, rooms: RoomsDelegate, connections: ConnectionsDelegate) -> None: ...

    async def stop(self) -> None: ...

    async def create_room(self, room: str, options: RoomOptions) -> bool:
        """Create ``room`` with ``options``; False when it already existed (its options stay)."""

    async def destroy_room(self, room: str) -> bool:
        """Remove ``room`` and every membership in it, on every server, then hand it to each
        server's :meth:`RoomsDelegate.room_destroyed`; False if absent."""

    async def room_exists(self, room: str) -> bool: ...

    async def room_options(self, room: str) -> RoomOptions | None:
        """The options ``room`` was created with; None when there is no such room."""

    async def list_rooms(self) -> list[str]: ...

    async def connection_opened(self, connection_id: str) -> None:
        """A socket opened on this server: ``send_to`` from any server can now reach it."""

    async def connection_closed(self, connection_id: str) -> None: ...

    async def add_member(
        self, room: str, connection_id: str, joined_at: int, info: dict[str, Any] | None
    ) -> None:
        """Record a membership; once this returns, what is published in ``room`` reaches it."""

    async def remove_member(self, room: str, connection_id: str) -> None: ...

    async def members(self, room: str) -> dict[str, Member]:
        """Every member of ``room`` on every server, by connection id."""

    async def publish(
        self, room: str, payload: dict[str, Any], options: RoomOptions | None = None
    ) -> None:
        """Deliver a room message or presence frame to every server that has members in
        ``room``, once each. In a room whose ``options`` keep history, the message is numbered
        first (``offset``, ``epoch`` added to ``payload``) and kept."""

    async def recover(self, room: str, offset: int, epoch: str, options: RoomOptions) -> Recovery:
        """What a member that last saw ``offset`` of ``epoch`` missed (§9). Every message it
        returns that this server is to deliver has been handed to ``deliver_room`` by then
        (the rooms skip those a held joiner got meanwhile: one coming later would be a
        duplicate)."""

    async def history(self, room: str, limit: int, options: RoomOptions) -> Kept:
        """The last ``limit`` kept messages of ``room`` (§9)."""

    async def send_to(self, connection_id: str, message: Any) -> bool:
        """Push to a connection held by any server; False when no server holds it."""

    async def send_all(self, message: Any) -> None:
        """Push to every connection of every server."""

    def status(self) -> dict[str, Any]:
        """For the ``status`` action: the broker's kind and health."""


@dataclass
class _Room:
    options: RoomOptions
    members: dict[str, Member] = field(default_factory=dict)
    history: RoomHistory | None = None


class MemoryBroker:
    """The single-process broker: rooms, memberships and histories in dicts, delivery by direct
    call."""

    kind = "memory"
    problem = None

    def __init__(self) -> None:
        self._rooms: dict[str, _Room] = {}
        self._local_rooms: RoomsDelegate | None = None
        self._connections: ConnectionsDelegate | None = None

    async def start(self, rooms: RoomsDelegate, connections: ConnectionsDelegate) -> None:
        self._local_rooms = rooms
        self._connections = connections

    async def stop(self) -> None:
        self._local_rooms = self._connections = None

    async def create_room(self, room: str, options: RoomOptions) -> bool:
        if room in self._rooms:
            return False
        history = None
        if options.history:
            history = RoomHistory(options.history_size, options.history_ttl)
        self._rooms[room] = _Room(options, history=history)
        return True

    async def destroy_room(self, room: str) -> bool:
        gone = self._rooms.pop(room, None)
        if gone is None:
            return False
        if self._local_rooms is not None:
            members = list(gone.members) if gone.options.presence else []
            await self._local_rooms.room_destroyed(room, members)
        return True

    async def room_exists(self, room: str) -> bool:
        return room in self._rooms

    async def room_options(self, room: str) -> RoomOptions | None:
        found = self._rooms.get(room)
        return None if found is None else found.options

    async def list_rooms(self) -> list[str]:
        return sorted(self._rooms)

    async def connection_opened(self, connection_id: str) -> None:
        """Nothing to share: ``send_to`` finds local connections in the registry."""

    async def connection_closed(self, connection_id: str) -> None:
        """Nothing to share."""

    async def add_member(
        self, room: str, connection_id: str, joined_at: int, info: dict[str, Any] | None
    ) -> None:
        found = self._rooms.get(room)
        if found is not None:
            found.members[connection_id] = Member(joined_at, info)

    async def remove_member(self, room: str, connection_id: str) -> None:
        found = self._rooms.get(room)
        if found is not None:
            found.members.pop(connection_id, None)

    async def members(self, room: str) -> dict[str, Member]:
        found = self._rooms.get(room)
        return {} if found is None else dict(found.members)

    async def publish(
        self, room: str, payload: dict[str, Any], options: RoomOptions | None = None
    ) -> None:
        found = self._rooms.get(room)
        if options is not None and options.history and found and found.history is not None:
            frame = found.history.append(payload)
        else:
            frame = codec.dumps(payload)
        if self._local_rooms is not None:
            await self._local_rooms.deliver_room(room, frame)

    async def recover(self, room: str, offset: int, epoch: str, options: RoomOptions) -> Recovery:
        history = self._history(room)
        if history is None:
            return Recovery(False, NO_HISTORY)
        return history.since(offset, epoch)

    async def history(self, room: str, limit: int, options: RoomOptions) -> Kept:
        history = self._history(room)
        return NO_HISTORY if history is None else history.last(limit)

    def _history(self, room: str) -> RoomHistory | None:
        found = self._rooms.get(room)
        return None if found is None else found.history

    async def send_to(self, connection_id: str, message: Any) -> bool:
        return self._connections is not None and self._connections.deliver_to(
            connection_id, message
        )

    async def send_all(self, message: Any) -> None:
        if self._connections is not None:
            self._connections.deliver_all(message)

    def status(self) -> dict[str, Any]:
        return {"kind": self.kind, "state": "ok", "rooms": len(self._rooms)}
