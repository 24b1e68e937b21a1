"""Fan-out between servers, behind one interface: in memory (the default) or through Redis.

The broker owns what is shared by every server of a cluster: which rooms exist, who is a member
of each (cluster-wide, with ``joinedAt``), and the delivery of room messages and pushes to the
server that holds the recipient. It never touches a socket: it hands deliveries to its
:class:`RoomsDelegate` (this server's rooms) and :class:`ConnectionsDelegate` (its
connections).

:class:`MemoryBroker` serves a single process and needs nothing but Python;
``squall.redis_broker.RedisBroker`` makes several processes or machines act as one; while
Redis is away it keeps this server's rooms working and raises
:class:`~squall.errors.BrokerUnavailable` only for what cannot wait (issue 11).
"""

from __future__ import annotations

from typing import Any, Protocol

from . import codec

__all__ = ["Broker", "ConnectionsDelegate", "MemoryBroker", "RoomsDelegate"]


class RoomsDelegate(Protocol):
    """What a broker hands to this server's rooms (:class:`~squall.rooms.Rooms`).

    Deliveries flow one way, broker to rooms: nothing here calls back into the broker, so a
    broker never sees its own operations re-entered halfway through.
    """

    async def deliver_room(self, room: str, frame: bytes) -> None:
        """Give an encoded room message to this server's members of ``room``."""

    async def room_destroyed(self, room: str) -> None:
        """``room`` is gone, its memberships already removed from the broker: tell this
        server's members and drop them here (leave middleware runs)."""

    def local_state(self) -> tuple[list[str], list[tuple[str, str, int]]]:
        """Rooms this server needs to exist, and its memberships ``(room, id, joinedAt)``.

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

    async def create_room(self, room: str) -> bool:
        """Create ``room``; False when it already existed."""

    async def destroy_room(self, room: str) -> bool:
        """Remove ``room`` and every membership in it, on every server, then hand it to each
        server's :meth:`RoomsDelegate.room_destroyed`; False if absent."""

    async def room_exists(self, room: str) -> bool: ...

    async def list_rooms(self) -> list[str]: ...

    async def connection_opened(self, connection_id: str) -> None:
        """A socket opened on this server: ``send_to`` from any server can now reach it."""

    async def connection_closed(self, connection_id: str) -> None: ...

    async def add_member(self, room: str, connection_id: str, joined_at: int) -> None: ...

    async def remove_member(self, room: str, connection_id: str) -> None: ...

    async def members(self, room: str) -> dict[str, int]:
        """Every member of ``room`` on every server: ``{connection id: joinedAt ms}``."""

    async def publish(self, room: str, payload: dict[str, Any]) -> None:
        """Deliver a room message to every server that has members in ``room``, once each."""

    async def send_to(self, connection_id: str, message: Any) -> bool:
        """Push to a connection held by any server; False when no server holds it."""

    async def send_all(self, message: Any) -> None:
        """Push to every connection of every server."""

    def status(self) -> dict[str, Any]:
        """For the ``status`` action: the broker's kind and health."""


class MemoryBroker:
    """The single-process broker: rooms and memberships in dicts, delivery by direct call."""

    kind = "memory"
    problem = None

    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, int]] = {}
        self._local_rooms: RoomsDelegate | None = None
        self._connections: ConnectionsDelegate | None = None

    async def start(self, rooms: RoomsDelegate, connections: ConnectionsDelegate) -> None:
        self._local_rooms = rooms
        self._connections = connections

    async def stop(self) -> None:
        self._local_rooms = self._connections = None

    async def create_room(self, room: str) -> bool:
        if room in self._rooms:
            return False
        self._rooms[room] = {}
        return True

    async def destroy_room(self, room: str) -> bool:
        if self._rooms.pop(room, None) is None:
            return False
        if self._local_rooms is not None:
            await self._local_rooms.room_destroyed(room)
        return True

    async def room_exists(self, room: str) -> bool:
        return room in self._rooms

    async def list_rooms(self) -> list[str]:
        return sorted(self._rooms)

    async def connection_opened(self, connection_id: str) -> None:
        """Nothing to share: ``send_to`` finds local connections in the registry."""

    async def connection_closed(self, connection_id: str) -> None:
        """Nothing to share."""

    async def add_member(self, room: str, connection_id: str, joined_at: int) -> None:
        members = self._rooms.get(room)
        if members is not None:
            members[connection_id] = joined_at

    async def remove_member(self, room: str, connection_id: str) -> None:
        members = self._rooms.get(room)
        if members is not None:
            members.pop(connection_id, None)

    async def members(self, room: str) -> dict[str, int]:
        return dict(self._rooms.get(room, {}))

    async def publish(self, room: str, payload: dict[str, Any]) -> None:
        if self._local_rooms is not None:
            await self._local_rooms.deliver_room(room, codec.dumps(payload))

    async def send_to(self, connection_id: str, message: Any) -> bool:
        return self._connections is not None and self._connections.deliver_to(
            connection_id, message
        )

    async def send_all(self, message: Any) -> None:
        if self._connections is not None:
            self._connections.deliver_all(message)

    def status(self) -> dict[str, Any]:
        return {"kind": self.kind, "state": "ok", "rooms": len(self._rooms)}
