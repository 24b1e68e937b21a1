"""This server's share of the cluster state in Redis, kept true through outages.

A server owns its memberships (``<c>:room:<room>`` entries, connection id -> ``{"server",
"joinedAt", "info"?}`` as JSON, listed in ``<c>:server:<id>:members``), its connections
(``<c>:connections`` entries, listed in ``<c>:server:<id>:connections``) and its lease
(``<c>:server:<id>``, in ``<c>:servers``).
:class:`MemberStore` writes them, and nothing else does but the reaper of a dead server:

- every change goes through a :class:`~squall.backlog.Journal`, written in order by one writer
  that groups the changes made while its previous write was on its way (a burst of joins costs
  a few round trips, not one each), and written again if it fails: no change is lost to a
  dropped connection;
- :meth:`MemberStore.write_back` makes Redis hold exactly what this server holds, after an
  outage or a Redis restart: it removes what was removed here meanwhile (no ghost member) and
  writes what Redis forgot;
- :meth:`MemberStore.reap` claims and forgets dead servers in one Lua script, so one survivor
  does it, once, and never half: the leaves of their members (reason ``server lost``) are
  published by that script too, so they are told exactly once, within the lease.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from . import codec
from .backlog import Journal
from .broker import Member, Membership

__all__ = ["MemberStore", "Share", "parse_member"]

#: A server's share of the cluster state, as a write-back reads it: its rooms (name ->
#: options), its memberships and the ids of the connections it holds.
Share = tuple[Mapping[str, dict[str, Any]], Iterable[Membership], Iterable[str]]


def parse_member(value: bytes) -> Member:
    """A membership as :meth:`MemberStore.member_value` wrote it, or as a server older than
    presence wrote it (``<server id>|<joinedAt>``: still met during a rolling upgrade)."""
    if not value.startswith(b"{"):
        _, _, joined = value.decode().rpartition("|")
        return Member(int(joined) if joined.isdigit() else 0)
    stored = codec.loads(value)
    return Member(stored["joinedAt"], stored.get("info"))


# Remove every membership and connection server ``id`` owned in cluster ``c``; return how many
# memberships. With a ``token``, the leave of each of its members of a room with presence is
# published to the room (PROTOCOL.md §8, reason "server lost"), built as squall.presence builds
# it. Keys are built inside: one Redis, not Redis Cluster.
_FORGET = r"""
local function forget(c, id, token)
  local owned = c .. ':server:' .. id .. ':members'
  local held = c .. ':server:' .. id .. ':connections'
  local entries = redis.call('SMEMBERS', owned)
  for _, entry in ipairs(entries) do
    local cut = string.find(entry, '\0', 1, true)
    if cut then
      local room, cid = string.sub(entry, 1, cut - 1), string.sub(entry, cut + 1)
      redis.call('HDEL', c .. ':room:' .. room, cid)
      local options = token and redis.call('HGET', c .. ':roomOptions', room)
      if options and cjson.decode(options).presence then
        redis.call('PUBLISH', c .. ':say:' .. room, token ..
          '{"context":"presence","event":"leave","room":' .. cjson.encode(room) ..
          ',"id":' .. cjson.encode(cid) .. ',"reason":"server lost"}')
      end
    end
  end
  for _, cid in ipairs(redis.call('SMEMBERS', held)) do
    redis.call('HDEL', c .. ':connections', cid)
  end
  redis.call('DEL', owned, held)
  return #entries
end
"""

#: Reap every server of cluster ARGV[1] but ARGV[2] whose lease expired, publishing its
#: members' leaves with token ARGV[3] and leaving a note ``<c>:reaped:<id>`` for ARGV[4] ms (a
#: server that was only stalled finds it and announces its members again):
#: ``{{reaped id, its memberships, ...}, {ids of the other servers alive}}``.
REAP = (
    _FORGET
    + r"""
local c, me, reaped, alive = ARGV[1], ARGV[2], {}, {}
for _, id in ipairs(redis.call('SMEMBERS', c .. ':servers')) do
  if id == me then
  elseif redis.call('EXISTS', c .. ':server:' .. id) == 0 then
    redis.call('SREM', c .. ':servers', id)
    reaped[#reaped + 1] = id
    reaped[#reaped + 1] = forget(c, id, ARGV[3])
    redis.call('SET', c .. ':reaped:' .. id, '1', 'PX', ARGV[4])
  else
    alive[#alive + 1] = id
  end
end
return {reaped, alive}
"""
)

#: This server ARGV[2] leaves cluster ARGV[1]: its memberships, connections and lease go
#: (its sockets are closed by then: their leaves were told as they closed).
LEAVE = (
    _FORGET
    + r"""
local c, me = ARGV[1], ARGV[2]
local removed = forget(c, me, nil)
redis.call('SREM', c .. ':servers', me)
redis.call('DEL', c .. ':server:' .. me)
return removed
"""
)


#: How long the note that a server was reaped waits for it to come back and read it.
REAPED_NOTE_MS = 3_600_000


class MemberStore:
    """Writes this server's memberships, connections, created rooms and lease to Redis.

    Args:
        cluster: the key prefix.
        server_id: this server's id.
        lease_ms: ``redis.leaseTimeout``: the lease key lives 3/4 of it (renewed every 1/4 by
            the broker), so a dead server's members go at most ``lease_ms`` after its last
            renewal.
        token: what every published message starts with (the reaper publishes the leaves of
            a dead server's members of rooms with presence).
    """

    def __init__(self, cluster: str, server_id: str, lease_ms: int, token: bytes) -> None:
        self.cluster = cluster
        self.server_id = server_id
        self.token = token
        self.lease_ttl_ms = lease_ms * 3 // 4
        self.journal = Journal()
        self._write_back_due = True  # nothing is in Redis before the first write-back
        self._lock = asyncio.Lock()
        self._redis: Any = None
        self._reap: Any = None
        self._leave: Any = None

    def attach(self, redis: Any) -> None:
        """Use this client (a ``redis.asyncio.Redis``) from now on."""
        self._redis = redis
        self._reap = redis.register_script(REAP)
        self._leave = redis.register_script(LEAVE)

    def key(self, *parts: str) -> str:
        return ":".join((self.cluster, *parts))

    # -- changes ------------------------------------------------------------------------------

    def member_value(self, joined_at: int, info: dict[str, Any] | None) -> bytes:
        """How a membership of this server is kept in its room's hash."""
        value: dict[str, Any] = {"server": self.server_id, "joinedAt": joined_at}
        if info is not None:
            value["info"] = info
        return codec.dumps(value)

    def out_of_sync(self) -> None:
        """Redis may have lost, or missed, changes: a :meth:`write_back` is due, and until it
        reads this server's state a removal need not be journaled (see :meth:`record`)."""
        self._write_back_due = True

    def record(self, key: Hashable, value: Any) -> int:
        """Journal a change: ``("member", room, id)`` to ``(joinedAt, info)`` or None,
        ``("connection", id)`` to True or False, ``("room", name)`` to its options (a map).
        Its sequence number.

        While a write-back is due and has not yet read this server's state, a removal is not
        kept but cancels what was pending for its key: that write-back removes from Redis
        whatever this server no longer holds. So the journal stays as small as this server's
        state, however many clients come and go during a long outage. Once it has read the
        state, a removal is journaled like any change: the write-back carries the member, and
        only the journal can take it out again.
        """
        removal = value is None or value is False
        if removal and self._write_back_due:
            self.journal.forget(key)
            return 0
        return self.journal.record(key, value)

    async def write(self, change: int | None = None) -> None:
        """Write every pending change, unless ``change`` was written meanwhile.

        Serialised, so a key's changes reach Redis in the order they were made; one pipeline
        carries all the changes made while the previous one was on its way.

        Raises:
            RedisError, OSError: the changes stay pending.
        """
        async with self._lock:
            if change is not None and self.journal.confirmed >= change:
                return
            upto, changes = self.journal.snapshot()
            if changes:
                pipe = self._redis.pipeline(transaction=False)
                for key, value in changes.items():
                    self._queue_change(pipe, key, value)
                await pipe.execute()
            self.journal.confirm(upto)

    def _queue_change(self, pipe: Any, key: Hashable, value: Any) -> None:
        kind, *names = key
        if kind == "member":
            room, cid = names
            owned = self.key("server", self.server_id, "members")
            if value is None:
                pipe.hdel(self.key("room", room), cid)
                pipe.srem(owned, f"{room}\0{cid}")
            else:
                pipe.hset(self.key("room", room), cid, self.member_value(*value))
                pipe.sadd(owned, f"{room}\0{cid}")
        elif kind == "connection":
            (cid,) = names
            held = self.key("server", self.server_id, "connections")
            if value:
                pipe.hset(self.key("connections"), cid, self.server_id)
                pipe.sadd(held, cid)
            else:
                pipe.hdel(self.key("connections"), cid)
                pipe.srem(held, cid)
        else:  # "room": created while Redis was away
            pipe.sadd(self.key("rooms"), names[0])
            pipe.hsetnx(self.key("roomOptions"), names[0], codec.dumps(value))

    # -- the whole share ---------------------------------------------------------------------

    @property
    def write_back_due(self) -> bool:
        """Whether Redis may lack this server's share: after an outage, or a write-back that
        failed."""
        return self._write_back_due

    async def write_back(self, read_share: Callable[[], Share]) -> tuple[set[str], int]:
        """Make Redis hold exactly this server's share as ``read_share()`` gives it (rooms:
        name -> options, memberships, connections), plus the journal's newer changes:
        ``(rooms written, memberships)``.

        The share is read once the writes on their way are done, in the same step as the
        journal: a change made after that is in the journal, and one made before is in the
        share or was written already. The lease is renewed first, so nobody reaps this server
        while it writes; the rest is one MULTI, so no other server sees half of it.
        """
        async with self._lock:
            given_rooms, memberships, connections = read_share()
            self._write_back_due = False
            upto, changes = self.journal.snapshot()
            try:
                written = await self._write_share(given_rooms, memberships, connections, changes)
            except BaseException:
                self._write_back_due = True  # the next renewal, or reconnection, tries again
                raise
            self.journal.confirm(upto)
            return written

    async def _write_share(
        self,
        given_rooms: Mapping[str, dict[str, Any]],
        memberships: Iterable[Membership],
        connections: Iterable[str],
        changes: dict[Hashable, Any],
    ) -> tuple[set[str], int]:
        """One write-back: the share with ``changes`` (the journal) applied on top."""
        rooms = dict(given_rooms)
        members = {(m.room, m.connection_id): (m.joined_at, m.info) for m in memberships}
        held_now = set(connections)
        for (kind, *names), value in changes.items():
            if kind == "member":
                if value is None:
                    members.pop((names[0], names[1]), None)
                else:
                    members[(names[0], names[1])] = value
            elif kind == "connection":
                (held_now.add if value else held_now.discard)(names[0])
            else:
                rooms.setdefault(names[0], value)
        await self.announce()
        owned_key = self.key("server", self.server_id, "members")
        held_key = self.key("server", self.server_id, "connections")
        reading = self._redis.pipeline(transaction=False)
        reading.smembers(owned_key)
        reading.smembers(held_key)
        owned, held = await reading.execute()
        entries = {f"{room}\0{cid}" for room, cid in members}
        pipe = self._redis.pipeline(transaction=True)
        for entry in owned:
            room, _, cid = entry.decode().partition("\0")
            if f"{room}\0{cid}" not in entries:
                pipe.hdel(self.key("room", room), cid)
        gone = {cid.decode() for cid in held} - held_now
        if gone:
            pipe.hdel(self.key("connections"), *gone)
        pipe.delete(owned_key, held_key)
        by_room: dict[str, dict[str, bytes]] = {}
        for (room, cid), (joined, info) in members.items():
            by_room.setdefault(room, {})[cid] = self.member_value(joined, info)
        for room, mapping in by_room.items():
            pipe.hset(self.key("room", room), mapping=mapping)
        if entries:
            pipe.sadd(owned_key, *entries)
        if held_now:
            pipe.hset(self.key("connections"), mapping=dict.fromkeys(held_now, self.server_id))
            pipe.sadd(held_key, *held_now)
        if rooms:
            pipe.sadd(self.key("rooms"), *rooms)
            for room, options in rooms.items():  # a room keeps the options it was made with
                pipe.hsetnx(self.key("roomOptions"), room, codec.dumps(options))
        await pipe.execute()
        return set(rooms), len(members)

    # -- lease --------------------------------------------------------------------------------

    async def announce(self) -> bool:
        """Renew this server's lease; True when it was missing from the servers' set (reaped,
        or Redis forgot everything)."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(self.key("server", self.server_id), b"1", px=self.lease_ttl_ms)
        pipe.sadd(self.key("servers"), self.server_id)
        _, added = await pipe.execute()
        return bool(added)

    async def reap(self) -> tuple[list[tuple[str, int]], set[str]]:
        """Forget the servers whose lease expired: ``([(id, memberships removed)], ids of the
        other servers alive)``."""
        args = [self.cluster, self.server_id, self.token, REAPED_NOTE_MS]
        reaped, alive = await self._reap(args=args)
        pairs = zip(reaped[::2], reaped[1::2], strict=True)
        return [(other.decode(), removed) for other, removed in pairs], {
            other.decode() for other in alive
        }

    async def was_reaped(self) -> bool:
        """Whether another server reaped this one (and told its members' leaves) since this
        was last asked; the note is gone once read."""
        return bool(await self._redis.getdel(self.key("reaped", self.server_id)))

    async def leave(self) -> None:
        """Remove this server's memberships, connections and lease."""
        await self._leave(args=[self.cluster, self.server_id])
