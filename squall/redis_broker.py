"""The Redis broker: several Squall servers, on one machine or many, acting as one.

What lives in Redis (every key under the cluster name, ``<c>``):

- ``<c>:rooms``                 SET of room names;
- ``<c>:roomOptions``           HASH room -> its options (presence, history), as JSON;
- ``<c>:room:<room>``           HASH connection id -> ``{"server", "joinedAt", "info"?}``;
- ``<c>:server:<id>``           a lease key this server renews while alive;
- ``<c>:server:<id>:members``   SET of ``"<room>\\0<connection id>"`` this server owns;
- ``<c>:connections``           HASH connection id -> server id, for ``send_to``;
- ``<c>:server:<id>:connections`` SET of the connections this server holds;
- ``<c>:servers``               SET of the servers that have announced themselves;
- ``<c>:reaped:<id>``           a note that server ``<id>`` was reaped (read once, by it);
- ``<c>:historyMeta:<room>``, ``<c>:history:<room>``: a room's history
  (:mod:`squall.redis_history`).

Pub/sub channels, each message prefixed with the cluster token (``<c>|``) so that a foreign
publisher on the same Redis is ignored:

- ``<c>:say:<room>``            room messages and presence frames, the already-encoded frame; a
  server subscribes only while it holds members of that room, so a room with no members here
  costs nothing here;
- ``<c>:direct``                ``connection.send`` to a connection held by another server;
- ``<c>:all``                   pushes to every connection, and room destruction;
- ``<c>:canary:<id>``           this server's own self-check channel.

Crash safety: memberships belong to the server holding the connection, and only it (through
:class:`~squall.redis_members.MemberStore`) writes them. Each server renews a lease key living
3/4 of ``leaseTimeout`` every 1/4 of it, and on each renewal reaps the servers whose lease
expired (one Lua script: claim, forget and publish their members' ``server lost`` leaves at
once, so one survivor does it, once). A dead server's members are therefore gone, and told
gone, at most ``3/4 + 1/4 = leaseTimeout`` after its last renewal; a live server survives a
stalled loop of half the lease, and one that was reaped all the same (its renewal finds it
missing from ``<c>:servers``) writes its memberships back and announces their joins again.

Redis trouble never stops a server: it degrades to what it can do alone, and says what it
cannot. While Redis is away, or until this server has subscribed again after it came back:

- its own clients are served: ``say`` and pushes reach this server's members at once, and wait
  in a bounded :class:`~squall.backlog.Outbox` for the other servers, sent in order as soon as
  Redis is back by :class:`~squall.redis_catchup.CatchUp` (each marked with this server's
  origin, so it skips its own copy); when the outbox is full they fail with
  :class:`~squall.errors.BrokerUnavailable`, delivered nowhere;
- joining and leaving work for rooms this server knows; membership and connection changes wait
  in a :class:`~squall.backlog.Journal`, as does any write that failed, and are written until
  Redis has them (so no member outlives its connection for more than the lease);
- what needs the other servers' state now (``roomView``, a room never seen here, ``send_to`` a
  connection of another server, destroying a room) raises ``BrokerUnavailable``; so does a say
  in a room with history (only Redis hands out its offsets: one numbered here would collide
  with those the other servers get meanwhile) and reading a history.

The subscriber (:class:`~squall.redis_subscriber.Subscriber`) retries every half second at most,
so a server is back within that of Redis answering; it counts as up (``state`` ``ok``,
``/ready`` 200) only once every channel is subscribed again, its rooms and memberships are
written back (a Redis restarted without persistence has forgotten them) and its outbox is sent.
A canary published to itself every ``canaryInterval`` catches a subscriber that is connected
but deaf.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, ResponseError

from . import codec
from .backlog import Outbox
from .broker import ConnectionsDelegate, Member, RoomsDelegate
from .errors import BrokerUnavailable, SquallError
from .history import Kept, Recovery
from .presence import join_frame
from .redis_catchup import CatchUp
from .redis_history import RedisHistory
from .redis_members import MemberStore, Share, parse_member
from .redis_subscriber import TROUBLE, Subscriber
from .room_options import DEFAULT_OPTIONS, RoomOptions
from .urls import redact_url

__all__ = ["RedisBroker"]

log = logging.getLogger("squall.redis")

SEPARATOR = b"|"
#: How often a server back from an outage looks whether the others have subscribed again.
PEERS_POLL = 0.05
#: How long ``start`` waits for a reachable Redis before serving without it.
START_WAIT = 5.0
#: How long ``stop`` may spend sending the outbox and leaving the cluster.
STOP_WAIT = 2.0
#: While an outage lasts, it is reported again this often (seconds).
OUTAGE_REMINDER = 60.0

T = TypeVar("T")


class RedisBroker:
    """Rooms, memberships and fan-out shared through one Redis server.

    Args:
        url: ``redis://[[user]:password@]host:port/db``; shown and logged with the password
            hidden.
        server_id: this server's id (unique in the cluster).
        cluster: the cluster name: key prefix and message token.
        lease_ms: a dead server's members leave every room within this.
        canary_ms: how often the subscriber checks that it still hears its own messages.
        outbox_messages: messages for other servers kept while Redis is away.
        outbox_bytes: the same bound in bytes.
    """

    kind = "redis"

    def __init__(
        self,
        url: str,
        server_id: str,
        cluster: str,
        lease_ms: int,
        canary_ms: int,
        outbox_messages: int = 1000,
        outbox_bytes: int = 16 << 20,
    ) -> None:
        self.url = url
        self.shown_url = redact_url(url)
        self.server_id = server_id
        self.cluster = cluster
        self.token = cluster.encode() + SEPARATOR
        self.lease_ms = lease_ms
        self.canary_ms = canary_ms
        self.state = "connecting"
        self.problem: str | None = f"not connected to Redis at {self.shown_url} yet"
        self.received = {"say": 0, "direct": 0, "all": 0, "foreign": 0}
        self._redis: aioredis.Redis | None = None
        self._rooms: RoomsDelegate | None = None
        self._connections: ConnectionsDelegate | None = None
        self._local: dict[str, set[str]] = {}  # room -> this server's members: what it listens to
        self._subscriber = Subscriber(self._on_message, self._rejoin, self._link_down)
        # answers room_exists and room_options while Redis is away
        self._known_rooms: dict[str, RoomOptions] = {}
        self._peers: set[str] = set()  # the other servers, as of the last lease renewal
        self._run_id: str | None = None  # of the Redis process last joined: changes on restart
        self._members = MemberStore(cluster, server_id, lease_ms, self.token)
        self._history = RedisHistory(cluster, self.token)
        self._outbox = Outbox(outbox_messages, outbox_bytes)
        self._catch_up = CatchUp(self._outbox, self._members, self.token, self._is_up)
        self._tasks: list[asyncio.Task[None]] = []
        self._canary_sent = 0
        self._canary_heard = 0
        self._down_since: float | None = None
        self._reminded_at = 0.0
        self._up = asyncio.Event()
        self._stopping = False

    # -- names ---------------------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return self._members.key(*parts)

    def _say_channel(self, room: str) -> str:
        return self._key("say", room)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, rooms: RoomsDelegate, connections: ConnectionsDelegate) -> None:
        """Start joining the cluster; return once joined, or after ``START_WAIT`` without Redis.

        Raises:
            SquallError: ``redis.url`` cannot be used, or Redis refuses its credentials (a
                mistake to fix, not an outage to wait out).
        """
        self._rooms, self._connections = rooms, connections
        try:
            # A blocking pool: a burst of joins waits for a free connection instead of failing
            # with "Too many connections" (redis-py's default pool refuses past its size).
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url,
                max_connections=64,
                timeout=10,
                socket_connect_timeout=5,
                socket_timeout=10,
                health_check_interval=10,
            )
        except ValueError as exc:
            raise SquallError(f"redis.url {self.shown_url}: {exc}") from None
        self._redis = aioredis.Redis.from_pool(pool)  # closing the client closes the pool
        self._members.attach(self._redis)
        self._history.attach(self._redis)
        self._subscriber.attach(self._redis)
        self._catch_up.attach(self._redis)
        self._subscriber.channels = {
            self._key("direct"),
            self._key("all"),
            self._key("canary", self.server_id),
        }
        reachable = True
        try:
            await asyncio.wait_for(self._redis.ping(), START_WAIT)
        except (AuthenticationError, ResponseError) as exc:
            why = f"redis.url {self.shown_url}: Redis refuses this server ({exc})"
            raise SquallError(why) from None
        except (*TROUBLE, TimeoutError) as exc:
            reachable = False  # said once here; the subscriber keeps trying
            self._link_down(str(exc) or type(exc).__name__)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._subscriber.listen_forever()),
            loop.create_task(self._every(self.lease_ms / 4000, self._keep_lease)),
            loop.create_task(self._every(self.canary_ms / 1000, self._canary)),
        ]
        if reachable:
            try:
                await asyncio.wait_for(self._up.wait(), START_WAIT)
            except TimeoutError:
                log.warning(
                    "Redis at %s answers but this server could not join the cluster within "
                    "%.0f s (%s): serving its own clients meanwhile",
                    self.shown_url,
                    START_WAIT,
                    self.problem,
                )

    async def stop(self) -> None:
        # A flag as well as cancellation: redis-py can swallow a cancellation that lands
        # inside a command, and a loop relying on it alone would then never end.
        self._stopping = True
        self._subscriber.stop()
        tasks = [*self._tasks, *self._catch_up.stop()]
        for task in tasks:
            task.cancel()
        if tasks:
            _, running = await asyncio.wait(tasks, timeout=2)
            for task in running:
                log.warning("a Redis broker task did not stop in time: %r", task)
        if self._redis is not None:
            if self.state == "ok":
                await self._leave_cluster()
            if self._outbox:
                log.warning(
                    "%d messages for other servers were never sent: Redis did not take them "
                    "before this server stopped",
                    len(self._outbox),
                )
            await self._redis.aclose()
        self.state, self.problem = "stopped", "the broker is stopped"

    async def _leave_cluster(self) -> None:
        """Send what waits, then remove this server's memberships, connections and lease."""

        async def leave() -> None:
            await self._catch_up.drain()
            await self._members.leave()
            await self._tell_peers({"bye": self.server_id})

        try:
            await asyncio.wait_for(leave(), STOP_WAIT)
        except (*TROUBLE, TimeoutError) as exc:
            log.warning(
                "could not leave the cluster cleanly (%s): the other servers remove this "
                "server's members when its lease expires",
                exc or type(exc).__name__,
            )

    # -- rooms -------------------------------------------------------------------------------

    async def create_room(self, room: str, options: RoomOptions) -> bool:
        if self.state == "ok":
            try:
                pipe = self._redis.pipeline(transaction=True)
                pipe.sadd(self._key("rooms"), room)
                pipe.hsetnx(self._key("roomOptions"), room, codec.dumps(options.as_dict()))
                added, _ = await pipe.execute()
            except TROUBLE as exc:
                log.warning("could not create room %s in Redis (%s): retrying", room, exc)
            else:
                if added:
                    self._known_rooms[room] = options
                return bool(added)
        if room in self._known_rooms:
            return False
        # Created here now, in Redis when it takes it (another server may create it too: the
        # set holds it once, with the options of whoever wrote first).
        self._known_rooms[room] = options
        await self._catch_up.flush(self._members.record(("room", room), options.as_dict()))
        return True

    async def destroy_room(self, room: str) -> bool:
        self._require_up("a room cannot be destroyed")
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.srem(self._key("rooms"), room)
            pipe.hget(self._key("roomOptions"), room)
            pipe.hdel(self._key("roomOptions"), room)
            pipe.hgetall(self._key("room", room))
            pipe.delete(*self._history.keys(room))  # a room made again starts a new epoch
            removed, stored, _, members, _ = await pipe.execute()
        except TROUBLE as exc:
            raise BrokerUnavailable("a room cannot be destroyed until it is back") from exc
        self._known_rooms.pop(room, None)
        if not removed:
            return False
        everyone: list[str] = []
        if _options(stored).presence:  # every member is told every member's leave
            joined = {cid.decode(): parse_member(value).joined_at for cid, value in members.items()}
            everyone = sorted(joined, key=joined.__getitem__)
        notice = codec.dumps({"destroyed": room, "by": self.server_id, "members": everyone})
        await self._catch_up.send(self._key("all"), notice, None)
        await self._room_gone(room, everyone)
        try:
            await self._redis.delete(self._key("room", room))
        except TROUBLE as exc:
            # Each server removes its own members of the room when it hears the notice.
            log.warning("could not delete the members of room %s in Redis: %s", room, exc)
        return True

    async def room_exists(self, room: str) -> bool:
        return await self.room_options(room) is not None

    async def room_options(self, room: str) -> RoomOptions | None:
        if self.state == "ok":
            try:
                pipe = self._redis.pipeline(transaction=False)
                pipe.sismember(self._key("rooms"), room)
                pipe.hget(self._key("roomOptions"), room)
                found, stored = await pipe.execute()
            except TROUBLE as exc:
                log.warning("could not look room %s up in Redis: %s", room, exc)
            else:
                if not found:
                    self._known_rooms.pop(room, None)
                    return None
                options = self._known_rooms[room] = _options(stored)
                return options
        if room in self._known_rooms:
            return self._known_rooms[room]
        raise BrokerUnavailable(f"cannot tell whether room {room} exists until it is back")

    async def list_rooms(self) -> list[str]:
        self._require_up("the list of rooms is unknown")
        try:
            found = await self._redis.smembers(self._key("rooms"))
        except TROUBLE as exc:
            raise BrokerUnavailable("the list of rooms is unknown until it is back") from exc
        return sorted(r.decode() for r in found)

    # -- connections -------------------------------------------------------------------------

    async def connection_opened(self, connection_id: str) -> None:
        """Note which server holds ``connection_id``, so ``send_to`` knows it exists."""
        await self._catch_up.flush(self._members.record(("connection", connection_id), True))

    async def connection_closed(self, connection_id: str) -> None:
        await self._catch_up.flush(self._members.record(("connection", connection_id), False))

    # -- membership --------------------------------------------------------------------------

    async def add_member(
        self, room: str, connection_id: str, joined_at: int, info: dict[str, Any] | None
    ) -> None:
        await self._catch_up.flush(
            self._members.record(("member", room, connection_id), (joined_at, info))
        )
        local = self._local.setdefault(room, set())
        local.add(connection_id)
        channel = self._say_channel(room)
        if len(local) == 1:
            await self._subscriber.subscribe(channel, confirm=self.state == "ok")
        else:  # another join may be subscribing right now
            await self._subscriber.confirmed(channel)

    async def remove_member(self, room: str, connection_id: str) -> None:
        # Recorded first: whatever happens next, this removal reaches Redis eventually.
        change = self._members.record(("member", room, connection_id), None)
        local = self._local.get(room)
        if local is not None and connection_id in local:
            local.discard(connection_id)
            if not local:
                del self._local[room]
                await self._subscriber.unsubscribe(self._say_channel(room))
        await self._catch_up.flush(change)

    async def _room_gone(self, room: str, members: list[str]) -> None:
        """``room`` was destroyed: stop listening to it, forget this server's memberships of it
        (in Redis too), then let the rooms tell their members (``members``: all it had, for
        their presence leaves)."""
        here = self._local.pop(room, set())
        changes = [self._members.record(("member", room, cid), None) for cid in here]
        if here:
            await self._subscriber.unsubscribe(self._say_channel(room))
            await self._catch_up.flush(changes[-1])
        await self._rooms.room_destroyed(room, members)

    async def members(self, room: str) -> dict[str, Member]:
        self._require_up("the members on other servers are unknown")
        try:
            found = await self._redis.hgetall(self._key("room", room))
        except TROUBLE as exc:
            raise BrokerUnavailable(
                "the members on other servers are unknown until it is back"
            ) from exc
        return {cid.decode(): parse_member(value) for cid, value in found.items()}

    def _is_up(self) -> bool:
        return self.state == "ok"

    def _require_up(self, what: str) -> None:
        if not self._is_up():
            raise BrokerUnavailable(f"{what} until it is back")

    # -- delivery ---------------------------------------------------------------------------

    async def publish(
        self, room: str, payload: dict[str, Any], options: RoomOptions | None = None
    ) -> None:
        frame = codec.dumps(payload)
        channel = self._say_channel(room)
        if options is not None and options.history:
            await self._publish_numbered(room, channel, frame, options)
            return
        await self._catch_up.send(channel, frame, lambda: self._rooms.deliver_room(room, frame))

    async def _publish_numbered(
        self, room: str, channel: str, frame: bytes, options: RoomOptions
    ) -> None:
        """Number, keep and publish in one round trip. Only Redis hands out a room's offsets,
        so while it is away a message of a room with history is refused, never numbered here
        (its offset would collide with the ones Redis gives the other servers meanwhile)."""
        why = "a room with history numbers its messages in Redis: this one cannot be said"
        self._require_up(why)
        try:
            await self._history.say(room, channel, frame, options)
        except TROUBLE as exc:
            raise BrokerUnavailable(f"{why} until it is back") from exc

    async def recover(self, room: str, offset: int, epoch: str, options: RoomOptions) -> Recovery:
        recovery = await self._read_history(
            lambda: self._history.since(room, offset, epoch, options)
        )
        # The messages it returns were published before the read: delivered here before this
        # returns, so the joiner's held copies are skipped, never pushed after its reply.
        await self._subscriber.caught_up()
        return recovery

    async def history(self, room: str, limit: int, options: RoomOptions) -> Kept:
        return await self._read_history(lambda: self._history.last(room, limit, options))

    async def _read_history(self, read: Callable[[], Awaitable[T]]) -> T:
        """One read of a room's history (one round trip), while Redis is there."""
        why = "the history of a room is kept in Redis: it cannot be read"
        self._require_up(why)
        try:
            return await read()
        except TROUBLE as exc:
            raise BrokerUnavailable(f"{why} until it is back") from exc

    async def send_to(self, connection_id: str, message: Any) -> bool:
        self._require_up("connections of other servers cannot be reached")
        try:
            holder = await self._redis.hget(self._key("connections"), connection_id)
        except TROUBLE as exc:
            raise BrokerUnavailable(
                "connections of other servers cannot be reached until it is back"
            ) from exc
        if holder is None:
            return False
        if holder.decode() == self.server_id:
            # Held here as far as Redis knows: this server's word is the latest (a socket
            # stops being held as its close is read, and Redis hears of it a write later).
            return self._connections.deliver_to(connection_id, message)
        envelope = codec.dumps({"to": connection_id, "message": message})
        await self._catch_up.send(self._key("direct"), envelope, None)
        return True

    async def send_all(self, message: Any) -> None:
        async def deliver_here() -> None:
            self._connections.deliver_all(message)

        await self._catch_up.send(self._key("all"), codec.dumps({"push": message}), deliver_here)

    async def round_trip(self) -> float:
        """Seconds a PING takes to Redis and back (the metrics and the admin page show it)."""
        started = time.monotonic()
        await self._redis.ping()
        return time.monotonic() - started

    def status(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "state": self.state,
            "problem": self.problem,
            "url": self.shown_url,
            "cluster": self.cluster,
            "subscriptions": sorted(self._subscriber.channels),
            "received": dict(self.received),
            "peers": sorted(self._peers),
            "outbox": {
                "messages": len(self._outbox),
                "bytes": self._outbox.bytes,
                "maxMessages": self._outbox.max_messages,
                "maxBytes": self._outbox.max_bytes,
            },
            "pendingWrites": len(self._members.journal),
        }

    async def _rejoin(self) -> None:
        """Subscribed to every channel: write this server's state back, send what waited, and
        only then count as up, so that no message said meanwhile overtakes the queued ones."""
        try:
            run_id = (await self._redis.info("server")).get("run_id")
        except ResponseError:  # INFO refused (an ACL): a restart cannot be told apart
            run_id = None
        restarted = None not in (run_id, self._run_id) and run_id != self._run_id
        self._run_id = run_id
        rooms, memberships = await self._write_back(every_known_room=restarted)
        await self._announce_again()
        await self._tell_peers({"hello": self.server_id})
        servers = await self._redis.smembers(self._key("servers"))
        self._peers |= {server.decode() for server in servers} - {self.server_id}
        if self._outbox:
            await self._await_peers()
        sent = await self._catch_up.drain()
        reading = self._redis.pipeline(transaction=False)
        reading.smembers(self._key("rooms"))
        reading.hgetall(self._key("roomOptions"))
        known, options = await reading.execute()
        self._known_rooms = {room.decode(): _options(options.get(room)) for room in known}
        was_down = self._down_since
        self.state, self.problem = "ok", None
        self._down_since = None
        self._canary_sent = self._canary_heard = 0
        self._up.set()
        if self._catch_up.pending:  # changed while the write-back was on its way
            self._catch_up.start()
        if was_down is None:
            log.info("joined cluster %s through Redis at %s", self.cluster, self.shown_url)
        else:
            log.warning(
                "Redis is back after %.1f s: subscribed again, wrote back %d rooms and %d "
                "memberships, sent %d queued messages",
                time.monotonic() - was_down,
                rooms,
                memberships,
                sent,
            )

    async def _tell_peers(self, notice: dict[str, str]) -> None:
        """``hello`` when subscribed, ``bye`` when leaving: the others know at once which
        servers to wait for after an outage (else only at their next lease renewal)."""
        await self._redis.publish(self._key("all"), self.token + codec.dumps(notice))

    async def _await_peers(self) -> None:
        """Wait until every other server is subscribed again (at most ``leaseTimeout``, after
        which a missing one counts as dead): a queued message published before a server has
        subscribed is lost for its members. After a Redis restart they all come back at once,
        and the first to be back would otherwise send its outbox into the void.

        A server subscribes to all its channels in one command, so its canary channel having
        a subscriber (``PUBSUB NUMSUB``) means it hears everything it listens to.
        """
        waiting = {self._key("canary", peer): peer for peer in self._peers}
        deadline = time.monotonic() + self.lease_ms / 1000
        while waiting:
            for channel, count in await self._redis.pubsub_numsub(*waiting):
                if count:
                    waiting.pop(channel.decode(), None)
            if not waiting:
                return
            if time.monotonic() > deadline:
                log.warning(
                    "sending %d queued messages although %s did not subscribe again within "
                    "redis.leaseTimeout: their members miss them",
                    len(self._outbox),
                    ", ".join(sorted(waiting.values())),
                )
                return
            await asyncio.sleep(PEERS_POLL)

    def _link_down(self, reason: str) -> None:
        """The subscriber lost Redis (or never had it): say so once, then every few minutes."""
        now = time.monotonic()
        self._members.out_of_sync()  # whatever Redis has now, the write-back makes it right
        if self.state == "ok" or self._down_since is None:
            first = self.state == "connecting"
            self.state = "connecting" if first else "reconnecting"
            verb = "cannot reach" if first else "lost"
            self.problem = f"{verb} Redis at {self.shown_url}: {reason}"
            self._down_since = self._reminded_at = now
            log.error(
                "%s; serving this server's clients, and keeping up to %d messages for the "
                "other servers, until it answers",
                self.problem,
                self._outbox.max_messages,
            )
        else:
            if self.state == "deaf":
                self.state = "reconnecting"
            if now - self._reminded_at >= OUTAGE_REMINDER:
                self._reminded_at = now
                log.warning(
                    "still no Redis at %s after %.0f s (%s); %d messages wait for it",
                    self.shown_url,
                    now - self._down_since,
                    reason,
                    len(self._outbox),
                )

    async def _on_message(self, channel: str, data: bytes) -> None:
        if not data.startswith(self.token):
            self.received["foreign"] += 1
            return
        body = data[len(self.token) :]
        body = self._catch_up.unwrap(body)
        if body is None:
            return  # said here while Redis was away: delivered here already
        prefix = self.cluster + ":"
        name = channel[len(prefix) :]
        try:
            if name.startswith("say:"):
                self.received["say"] += 1
                await self._rooms.deliver_room(name[4:], body)
            elif name == "direct":
                self.received["direct"] += 1
                envelope = codec.loads(body)
                self._connections.deliver_to(envelope["to"], envelope["message"])
            elif name == "all":
                self.received["all"] += 1
                envelope = codec.loads(body)
                if "push" in envelope:
                    self._connections.deliver_all(envelope["push"])
                elif "destroyed" in envelope and envelope.get("by") != self.server_id:
                    self._known_rooms.pop(envelope["destroyed"], None)
                    await self._room_gone(envelope["destroyed"], envelope["members"])
                elif "hello" in envelope and envelope["hello"] != self.server_id:
                    self._peers.add(envelope["hello"])
                elif "bye" in envelope:
                    self._peers.discard(envelope["bye"])
            elif name.startswith("canary:"):
                self._canary_heard = int(body)
        except Exception:
            log.exception("could not deliver a message from %s", channel)

    # -- lease, reaping, canary, write-back -----------------------------------------------------

    async def _keep_lease(self) -> None:
        if self.state != "ok":
            return
        lapsed = await self._members.announce()
        if lapsed:
            log.warning(
                "this server was missing from Redis (its lease expired, or Redis lost its "
                "data): writing its rooms and members back"
            )
        if lapsed or self._members.write_back_due:  # (due: the last write-back failed)
            await self._write_back()
            await self._announce_again()
        reaped, alive = await self._members.reap()
        # A Redis that just lost its data does not list the servers that are yet to come back.
        self._peers = (self._peers | alive if lapsed else alive) - {other for other, _ in reaped}
        for other, removed in reaped:
            log.warning(
                "server %s stopped renewing its lease: removed its %d memberships", other, removed
            )

    async def _write_back(self, every_known_room: bool = False) -> tuple[int, int]:
        """Make Redis hold exactly this server's rooms, memberships and connections:
        ``(rooms, memberships)`` written.

        Run when the subscriber is up again, and when this server finds it was reaped: either
        way Redis may have lost what it had, or kept what was removed here meanwhile. After
        Redis restarted (perhaps without persistence) every room this server knows is written
        too, so rooms nobody is in survive; otherwise only those it needs (its starting rooms,
        its members' rooms), so a room destroyed while it was cut off stays destroyed.
        """
        rooms: dict[str, RoomOptions] = {}

        def read_share() -> Share:
            needed, memberships = self._rooms.local_state()
            rooms.update({**self._known_rooms, **needed} if every_known_room else needed)
            options = {room: options.as_dict() for room, options in rooms.items()}
            return options, memberships, self._connections.local_connections()

        written, members = await self._members.write_back(read_share)
        self._known_rooms.update(rooms)
        return len(written), members

    async def _announce_again(self) -> None:
        """Another server reaped this one while it was cut off or stalled, and told the leaves
        of its members (``server lost``): they are here all the same, so their joins are told
        again (PROTOCOL.md §8), with their first ``joinedAt``."""
        if not await self._members.was_reaped():
            return
        needed, memberships = self._rooms.local_state()
        announced = 0
        for member in memberships:
            if needed[member.room].presence:
                frame = join_frame(member.room, member.connection_id, member.joined_at, member.info)
                await self.publish(member.room, frame)
                announced += 1
        log.warning(
            "this server was reaped while alive: the joins of its %d members of rooms with "
            "presence were told again",
            announced,
        )

    async def _canary(self) -> None:
        if self.state != "ok":
            return
        if self._canary_sent and self._canary_heard != self._canary_sent:
            self.state = "deaf"
            self.problem = "this server no longer hears its own messages through Redis"
            self._down_since = self._reminded_at = time.monotonic()
            log.error("%s: resubscribing", self.problem)
            await self._subscriber.resubscribe()
            return
        self._canary_sent += 1
        await self._redis.publish(
            self._key("canary", self.server_id), self.token + str(self._canary_sent).encode()
        )

    async def _every(self, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        """Run ``job`` every ``seconds``, on a fixed schedule: a slow run does not push the
        next ones later (the lease arithmetic counts on the reaper's period)."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while not self._stopping:
            due = max(due + seconds, loop.time())
            await asyncio.sleep(due - loop.time())
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s failed: %s", job.__name__.strip("_"), exc)


def _options(stored: bytes | None) -> RoomOptions:
    """A room's options as Redis keeps them (none kept: the room has no presence, no history)."""
    return DEFAULT_OPTIONS if stored is None else RoomOptions.from_dict(codec.loads(stored))
