"""Chat rooms: existence, membership, chat middleware, presence, history and fan-out.

PROTOCOL.md §5, §8 and §9. Cluster-wide truth (which rooms exist with which options, every
member, the numbering and history of a room) lives in the broker. This server keeps an index of
its own members per room, so a broadcast costs O(members of that room here), never O(all
connections). A room message or a presence frame is encoded once and the same bytes are
written to every member, unless ``say`` middleware gives a recipient a copy of its own.

Joining is the delicate part. From the moment a joiner's membership is recorded it receives
what is published in the room, but its roomAdd reply (and, with ``since``, the messages it
missed) must reach it first, and no message may be both recovered and pushed live, nor fall in
between. So a joiner is *held*: what is delivered to it meanwhile waits in a buffer, the
history is read, and once the reply is written the buffer is released, minus the messages whose
offsets the reply already carried. The joiner's own presence join is among the held frames, so
it comes after the reply, as §8 says.

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
from collections.abc import Iterable, Mapping
from typing import Any

from . import codec
from .broker import Broker, Membership
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
from .history import NO_HISTORY, Kept, Recovery
from .metrics import Stats
from .middleware import ChatMiddleware, by_priority, hooks, resolve
from .presence import (
    DESTROYED,
    DISCONNECTED,
    LEFT,
    PRESENCE_PREFIX,
    join_frame,
    leave_frame,
)
from .room_options import DEFAULT_OPTIONS, RoomOptions, parse_room_options

__all__ = ["SERVER_SENDER", "Rooms", "valid_room_name"]

log = logging.getLogger("squall.rooms")

#: The ``from`` of messages said by server code rather than a client (as ActionHero's mock id).
SERVER_SENDER = 0


#: C0 and C1 control characters and DEL (Unicode category Cc).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

#: The longest pause between two sweeps for empty temporary rooms, in seconds.
_SWEEP_AT_MOST_EVERY = 60.0

#: A destroyed room's leaves are written this many members at a time, the loop free between.
_DESTROY_BATCH = 64


def valid_room_name(room: Any, max_length: int) -> bool:
    """A string of 1 to ``max_length`` characters, none of them a control character (§5)."""
    return isinstance(room, str) and 0 < len(room) <= max_length and _CONTROL.search(room) is None


class Rooms:
    """Rooms as the verbs, actions and server code use them.

    Server code: ``add``, ``destroy``, ``exists``, ``list``, ``members``, ``broadcast``.
    Connections: ``join``, ``leave``, ``view``, ``say``, ``history``, ``leave_all``.
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
        defaults: ``general.roomDefaults``: the options a room gets for what its creator
            leaves out.
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
        defaults: RoomOptions = DEFAULT_OPTIONS,
    ) -> None:
        self.broker = broker
        self.messages = messages
        self.stats = stats if stats is not None else Stats()
        self.max_name_length = max_name_length
        self.max_rooms = max_rooms
        self.empty_room_ttl = empty_room_ttl_ms / 1000 if empty_room_ttl_ms else None
        self.defaults = defaults
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
        # joiners whose reply is not written yet: room -> id -> (connection, held frames)
        self._held: dict[str, dict[str, tuple[Connection, list[bytes]]]] = {}
        self._releases: set[asyncio.Task[None]] = set()
        self._memberships: dict[tuple[str, str], Membership] = {}
        self._announced: set[tuple[str, str]] = set()  # memberships whose join was pushed
        self._options: dict[str, RoomOptions] = {}  # of the rooms this server has used
        self._starting: list[str] = []

    async def start(self, starting: Mapping[str, Any]) -> None:
        """Create the rooms that exist from boot on (``general.startingChatRooms``: name ->
        options). While the broker's backend is away they exist here now, and there once it
        is back: an outage of Redis never stops a server from booting.

        Raises:
            InvalidRoomName: one of them is not a valid room name.
            InvalidRoomOptions: one of them has options that cannot be used.
        """
        for room, given in starting.items():
            options = parse_room_options(given, self.defaults)
            try:
                await self.add(room, options)
            except BrokerUnavailable:
                await self.broker.create_room(room, options)
            self._options[room] = options
            self._starting.append(room)

    # -- server API -----------------------------------------------------------------------

    async def add(
        self,
        room: str,
        options: Mapping[str, Any] | RoomOptions | None = None,
        *,
        temporary: bool = False,
    ) -> bool:
        """Create ``room`` with ``options`` (``{"presence": bool, "history": {"size": n,
        "ttl": ms}}``, each left out taken from ``general.roomDefaults``); False when it
        already exists (its options stay as they were).

        A ``temporary`` room is destroyed once it has stayed empty for ``general.emptyRoomTtl``
        (``createChatRoom`` makes its rooms so); other rooms live until destroyed. The server
        that created a temporary room is the one that reaps it.

        Raises:
            InvalidRoomName: not a string of 1 to ``maxRoomNameLength`` characters without
                control characters.
            InvalidRoomOptions: naming the option that cannot be used, and why.
            TooManyRooms: ``general.maxRooms`` rooms exist already (cluster-wide).
        """
        self._check_name(room)
        parsed = parse_room_options(options, self.defaults)
        if await self.broker.room_exists(room):
            return False
        if self.max_rooms is not None and len(await self.broker.list_rooms()) >= self.max_rooms:
            raise TooManyRooms()
        created = await self.broker.create_room(room, parsed)
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
        """Every member, on every server: ``{id: {"id": id, "joinedAt": ms, "info"?: {...}}}``
        (``info``: what its join middleware returned, PROTOCOL.md §8)."""
        found = await self.broker.members(room)
        members = {}
        for cid, member in found.items():
            shown: dict[str, Any] = {"id": cid, "joinedAt": member.joined_at}
            if member.info is not None:
                shown["info"] = member.info
            members[cid] = shown
        return members

    async def broadcast(self, room: str, message: Any, sender: Any = SERVER_SENDER) -> None:
        """Say ``message`` in ``room`` from server code (no middleware ``on_say_receive``)."""
        options = await self._options_of(room)
        await self._publish_said(room, _payload(room, message, sender), options)

    # -- connection API -------------------------------------------------------------------

    async def join(
        self, connection: Connection, room: Any, since: tuple[int, str] | None = None
    ) -> Recovery | None:
        """Join ``room``; with ``since`` (the ``offset`` and ``epoch`` last seen), the
        messages missed since then (§9): None without ``since``.

        Join middleware may raise to refuse; what the hooks return as dicts is merged into the
        member's public ``info`` (§8).
        """
        self._check_name(room)
        if room in connection.rooms:
            raise AlreadyInRoom(room)
        options = await self._options_of(room, fresh=True)
        info: dict[str, Any] | None = None
        for hook in self._join:
            returned = await resolve(hook(connection, room))
            if isinstance(returned, dict):
                info = {**(info or {}), **returned}
        if room in connection.rooms:  # a concurrent roomAdd for the same room won
            raise AlreadyInRoom(room)
        joined_at = now_ms()
        connection.rooms.append(room)  # reserved before the broker is awaited
        # Held only when something must reach it before its first room frame: its recovery,
        # or (with presence) its reply before its own join.
        held: list[bytes] | None = None
        if since is not None or options.presence:
            held = []
            self._held.setdefault(room, {})[connection.id] = (connection, held)
        try:
            await self.broker.add_member(room, connection.id, joined_at, info)
        except Exception:
            self._drop(connection, room)
            raise
        key = (room, connection.id)
        self._memberships[key] = Membership(room, connection.id, joined_at, info)
        if held is None:
            self._local.setdefault(room, {})[connection.id] = connection
        if room in self._temporary:
            self._temporary[room] = None
        if connection.closed:  # it went away while the broker worked
            await self._remove(connection, room, None)
            return None
        if held is None:
            return None
        try:
            recovery = None if since is None else await self._recover(room, since, options)
            if options.presence and key in self._memberships:  # (it may have left meanwhile)
                self._announced.add(key)
                await self._announce(room, join_frame(room, connection.id, joined_at, info))
        except Exception:
            self._announced.discard(key)
            await self._remove(connection, room, None)
            raise
        # Released once the reply is written: the transport writes a verb's reply in the very
        # step its awaitable resolves, and this task's first step runs after that step.
        after = 0 if recovery is None else recovery.kept.offset
        release = self._release(connection, room, held, after)
        task = asyncio.get_running_loop().create_task(release)
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)
        return recovery

    async def leave(self, connection: Connection, room: Any) -> None:
        """Leave on request: leave middleware may block it."""
        await self._check_member(connection, room)
        for hook in self._leave:
            await resolve(hook(connection, room))
        await self._remove(connection, room, LEFT)

    async def leave_all(self, connection: Connection) -> None:
        """Leave every room as the connection goes away: middleware runs but cannot block."""
        for room in list(connection.rooms):
            await self._run_leave_hooks(connection, room)
            await self._remove(connection, room, DISCONNECTED)

    async def view(self, connection: Connection, room: Any) -> dict[str, Any]:
        await self._check_member(connection, room)
        members = await self.members(room)
        return {"room": room, "membersCount": len(members), "members": members}

    async def history(self, connection: Connection, room: Any, limit: int | None) -> Kept:
        """The last ``limit`` kept messages of ``room`` (default and at most its size)."""
        await self._check_member(connection, room)
        options = await self._options_of(room)
        if not options.history:
            return NO_HISTORY
        wanted = options.history_size if limit is None else min(limit, options.history_size)
        return await self.broker.history(room, wanted, options)

    async def say(self, connection: Connection, room: Any, message: Any) -> None:
        if room is None or not isinstance(message, (str, dict)) or not message:
            raise SayRequiresRoomAndMessage()
        await self._check_member(connection, room)
        payload: dict[str, Any] | None = _payload(room, message, connection.id)
        for hook in self._on_say_receive:
            payload = await resolve(hook(connection, room, payload))
            if payload is None:
                return
        await self._publish_said(room, payload, await self._options_of(room))

    # -- broker delegate (squall.broker.RoomsDelegate) ---------------------------------------

    async def deliver_room(self, room: str, frame: bytes) -> None:
        """Write an encoded room message or presence frame to this server's members of
        ``room`` (a joiner's copy waits until its reply is out).

        Without ``say`` middleware the very same bytes go to every member (encoded once, by
        whoever published). With it, each recipient gets its own copy of a room message,
        changed or dropped; presence frames are not messages and go out as they are.
        """
        held = self._held.get(room)
        if held:
            for _, frames in held.values():
                frames.append(frame)
        members = self._local.get(room)
        if not members:
            return
        if frame.startswith(PRESENCE_PREFIX):
            self.stats.presence_frames += len(members)
        elif self._say:
            await self._deliver_each(list(members.values()), room, frame)
            return
        else:
            self.stats.deliveries += len(members)
        for connection in list(members.values()):
            connection.send_encoded(frame)

    def local_state(self) -> tuple[dict[str, RoomOptions], list[Membership]]:
        """The rooms this server needs (its starting rooms, its members' rooms), with their
        options, and its memberships: what a lost Redis is rebuilt from."""
        # (a membership whose room was destroyed while it joined has no options any more)
        memberships = [m for m in self._memberships.values() if m.room in self._options]
        needed = {*self._starting, *(m.room for m in memberships)}
        return {room: self._options[room] for room in sorted(needed)}, memberships

    async def room_destroyed(self, room: str, members: list[str]) -> None:
        """Tell this server's members of ``room`` it is gone (with the leave of every member,
        reason ``destroyed``, in a room with presence), run their leave middleware and drop
        them here; the broker has removed their memberships already."""
        self._temporary.pop(room, None)
        self._options.pop(room, None)
        here = [*self._local.get(room, {}).values()]
        here += [connection for connection, _ in self._held.get(room, {}).values()]
        if not here:
            return
        notice = codec.dumps(_payload(room, RoomDeleted().render(self.messages), SERVER_SENDER))
        leaves = [codec.dumps(leave_frame(room, member, DESTROYED)) for member in members]
        for index, connection in enumerate(here):
            connection.send_encoded(notice)
            for leave in leaves:
                connection.send_encoded(leave)
            self.stats.presence_frames += len(leaves)
            await self._run_leave_hooks(connection, room)
            self._drop(connection, room)
            if leaves and index % _DESTROY_BATCH == _DESTROY_BATCH - 1:
                await asyncio.sleep(0)  # N leaves to N members: let other work in between

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

    async def _options_of(self, room: str, fresh: bool = False) -> RoomOptions:
        """``room``'s options, asked of the broker the first time only (or when ``fresh``: a
        join asks whether the room still exists).

        Raises:
            RoomNotExist: there is no such room.
        """
        options = None if fresh else self._options.get(room)
        if options is None:
            options = await self.broker.room_options(room)
            if options is None:
                raise RoomNotExist(room)
            self._options[room] = options
        return options

    async def _publish_said(self, room: str, payload: dict[str, Any], options: RoomOptions) -> None:
        await self.broker.publish(room, payload, options)
        self.stats.says += 1
        if options.history:
            self.stats.history_stores += 1

    async def _announce(self, room: str, frame: dict[str, Any]) -> None:
        """Publish a presence frame to every member of ``room``, on every server."""
        await self.broker.publish(room, frame)

    async def _recover(self, room: str, since: tuple[int, str], options: RoomOptions) -> Recovery:
        offset, epoch = since
        if options.history:
            recovery = await self.broker.recover(room, offset, epoch, options)
        else:
            recovery = Recovery(False, NO_HISTORY)
        self.stats.recovered(recovery.recovered)
        return recovery

    async def _release(
        self, connection: Connection, room: str, frames: list[bytes], recovered_up_to: int
    ) -> None:
        """Hand a joiner the ``frames`` delivered to it while it was held, then deliver to it
        directly; messages up to offset ``recovered_up_to`` were in its reply already."""
        held = self._held.get(room, {}).get(connection.id)
        if held is None or held[1] is not frames:
            return  # it left (or the room went) meanwhile
        while frames:
            frame = frames.pop(0)
            if frame.startswith(PRESENCE_PREFIX):
                self.stats.presence_frames += 1
                connection.send_encoded(frame)
            elif recovered_up_to and _offset(frame) <= recovered_up_to:
                continue  # its reply carried it
            elif self._say:
                await self._deliver_each([connection], room, frame)
            else:
                self.stats.deliveries += 1
                connection.send_encoded(frame)
        # nothing awaited since the buffer was found empty: no frame falls in between
        self._unhold(connection, room)
        if room in connection.rooms and not connection.closed:
            self._local.setdefault(room, {})[connection.id] = connection

    async def _deliver_each(self, recipients: list[Connection], room: str, frame: bytes) -> None:
        """A room message through ``say`` middleware: each recipient its own copy, or none."""
        payload = codec.loads(frame)
        for connection in recipients:
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

    async def _remove(self, connection: Connection, room: str, reason: str | None) -> None:
        """End a membership here and in the broker; with presence, the other members are told
        ``reason`` (None: it was never announced)."""
        announced = (room, connection.id) in self._announced
        self._drop(connection, room)
        await self.broker.remove_member(room, connection.id)
        if announced and reason is not None:
            await self._announce(room, leave_frame(room, connection.id, reason))

    def _drop(self, connection: Connection, room: str) -> None:
        """Forget the membership here (the broker's record is the caller's business)."""
        if room in connection.rooms:
            connection.rooms.remove(room)
        self._unhold(connection, room)
        members = self._local.get(room)
        if members is not None:
            members.pop(connection.id, None)
            if not members:
                del self._local[room]
                if room in self._temporary:
                    self._temporary[room] = time.monotonic()
        self._memberships.pop((room, connection.id), None)
        self._announced.discard((room, connection.id))

    def _unhold(self, connection: Connection, room: str) -> None:
        held = self._held.get(room)
        if held is not None:
            held.pop(connection.id, None)
            if not held:
                del self._held[room]

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


def _offset(frame: bytes) -> float:
    """The ``offset`` of an encoded room message (infinity for one without: never recovered)."""
    offset = codec.loads(frame).get("offset")
    return offset if isinstance(offset, int) else float("inf")
