"""The Redis broker: several Squall servers, on one machine or many, acting as one.

What lives in Redis (every key under the cluster name, ``<c>``):

- ``<c>:rooms``                 SET of room names;
- ``<c>:room:<room>``           HASH connection id -> ``"<server id>|<joinedAt>"``;
- ``<c>:server:<id>``           a lease key (PX ``leaseTimeout``) this server renews while alive;
- ``<c>:server:<id>:members``   SET of ``"<room>\\0<connection id>"`` this server owns;
- ``<c>:connections``           HASH connection id -> server id, for ``send_to``;
- ``<c>:server:<id>:connections`` SET of the connections this server holds;
- ``<c>:servers``               SET of the servers that have announced themselves.

Pub/sub channels, each message prefixed with the cluster token (``<c>|``) so that a foreign
publisher on the same Redis is ignored:

- ``<c>:say:<room>``            room messages, the already-encoded frame; a server subscribes
  only while it holds members of that room, so a room with no members here costs nothing here;
- ``<c>:direct``                ``connection.send`` to a connection held by another server;
- ``<c>:all``                   pushes to every connection, and room destruction;
- ``<c>:canary:<id>``           this server's own self-check channel.

Crash safety: memberships belong to the server holding the connection. Each server renews its
lease every third of ``leaseTimeout`` and reaps servers whose lease expired: the first to claim
a dead server (``SREM <c>:servers``) removes its memberships from every room, once.

Redis trouble never stops a server: local clients keep being served, commands that need Redis
answer with an error naming the cause, and the subscriber reconnects with backoff, subscribes
again and writes this server's rooms and memberships back (a Redis restarted without
persistence has forgotten them). A canary published to itself every ``canaryInterval`` catches a
subscriber that is connected but deaf, and ``status`` reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from . import codec
from .broker import BrokerDelegate

__all__ = ["RedisBroker"]

log = logging.getLogger("squall.redis")

SEPARATOR = b"|"


class RedisBroker:
    """Rooms, memberships and fan-out shared through one Redis server.

    Args:
        url: ``redis://host:port/db``.
        server_id: this server's id (unique in the cluster).
        cluster: the cluster name: key prefix and message token.
        lease_ms: how long a dead server's members may linger in rooms.
        canary_ms: how often the subscriber checks that it still hears its own messages.
    """

    kind = "redis"

    def __init__(
        self, url: str, server_id: str, cluster: str, lease_ms: int, canary_ms: int
    ) -> None:
        self.url = url
        self.server_id = server_id
        self.cluster = cluster
        self.token = cluster.encode() + SEPARATOR
        self.lease_ms = lease_ms
        self.canary_ms = canary_ms
        self.state = "connecting"
        self.problem: str | None = None
        self.received = {"say": 0, "direct": 0, "all": 0, "foreign": 0}
        self._redis: aioredis.Redis | None = None
        self._delegate: BrokerDelegate | None = None
        self._interest: dict[str, set[str]] = {}
        self._channels: set[str] = set()
        self._pubsub: Any = None
        self._confirmations: dict[bytes, asyncio.Future[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._canary_sent = 0
        self._canary_heard = 0
        self._ready = asyncio.Event()
        self._stopping = False

    # -- names ---------------------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return ":".join((self.cluster, *parts))

    def _say_channel(self, room: str) -> str:
        return self._key("say", room)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, delegate: BrokerDelegate) -> None:
        """Connect, announce this server, and start listening; waits for the first subscribe."""
        self._delegate = delegate
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
        self._redis = aioredis.Redis.from_pool(pool)  # closing the client closes the pool
        self._channels = {
            self._key("direct"),
            self._key("all"),
            self._key("canary", self.server_id),
        }
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            raise ConnectionError(f"redis.url {self.url}: cannot reach Redis ({exc})") from None
        await self._announce()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._listen_forever()),
            loop.create_task(self._every(self.lease_ms / 3000, self._keep_lease)),
            loop.create_task(self._every(self.canary_ms / 1000, self._canary)),
        ]
        await asyncio.wait_for(self._ready.wait(), 10)

    async def stop(self) -> None:
        # A flag as well as cancellation: redis-py can swallow a cancellation that lands
        # inside a command, and a loop relying on it alone would then never end.
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, running = await asyncio.wait(self._tasks, timeout=2)
            for task in running:
                log.warning("a Redis broker task did not stop in time: %r", task)
        if self._redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._forget_server(self.server_id)
                await self._redis.srem(self._key("servers"), self.server_id)
                await self._redis.delete(self._key("server", self.server_id))
            await self._redis.aclose()
        self.state = "stopped"

    # -- rooms -------------------------------------------------------------------------------

    async def create_room(self, room: str) -> bool:
        return bool(await self._redis.sadd(self._key("rooms"), room))

    async def destroy_room(self, room: str) -> bool:
        if not await self._redis.srem(self._key("rooms"), room):
            return False
        await self._publish(
            self._key("all"), codec.dumps({"destroyed": room, "by": self.server_id})
        )
        await self._delegate.room_destroyed(room)
        await self._redis.delete(self._key("room", room))
        return True

    async def room_exists(self, room: str) -> bool:
        return bool(await self._redis.sismember(self._key("rooms"), room))

    async def list_rooms(self) -> list[str]:
        return sorted(r.decode() for r in await self._redis.smembers(self._key("rooms")))

    # -- connections -------------------------------------------------------------------------

    async def connection_opened(self, connection_id: str) -> None:
        """Note which server holds ``connection_id``, so ``send_to`` knows it exists."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(self._key("connections"), connection_id, self.server_id)
        pipe.sadd(self._key("server", self.server_id, "connections"), connection_id)
        await self._tolerate(pipe.execute(), f"could not register {connection_id}")

    async def connection_closed(self, connection_id: str) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hdel(self._key("connections"), connection_id)
        pipe.srem(self._key("server", self.server_id, "connections"), connection_id)
        await self._tolerate(pipe.execute(), f"could not unregister {connection_id}")

    async def _tolerate(self, command: Any, what: str) -> None:
        """Run a write that _restore redoes from local state after an outage: log, go on."""
        try:
            await command
        except (RedisError, OSError) as exc:
            log.warning("%s in Redis: %s", what, exc)

    # -- membership --------------------------------------------------------------------------

    async def add_member(self, room: str, connection_id: str, joined_at: int) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(self._key("room", room), connection_id, f"{self.server_id}|{joined_at}")
        pipe.sadd(self._key("server", self.server_id, "members"), f"{room}\0{connection_id}")
        await pipe.execute()
        local = self._interest.setdefault(room, set())
        local.add(connection_id)
        channel = self._say_channel(room)
        if len(local) == 1:
            await self._subscribe(channel)
        elif channel.encode() in self._confirmations:  # another join is subscribing right now
            await asyncio.shield(self._confirmations[channel.encode()])

    async def remove_member(self, room: str, connection_id: str) -> None:
        local = self._interest.get(room)
        if local is not None and connection_id in local:
            local.discard(connection_id)
            if not local:
                del self._interest[room]
                await self._unsubscribe(self._say_channel(room))
        pipe = self._redis.pipeline(transaction=False)
        pipe.hdel(self._key("room", room), connection_id)
        pipe.srem(self._key("server", self.server_id, "members"), f"{room}\0{connection_id}")
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            # The member is gone here already; when Redis is back, _restore rewrites this
            # server's memberships from what it really holds, without this one.
            log.warning("could not remove %s from %s in Redis: %s", connection_id, room, exc)

    async def members(self, room: str) -> dict[str, int]:
        found = await self._redis.hgetall(self._key("room", room))
        members = {}
        for cid, value in found.items():
            _, _, joined = value.decode().rpartition("|")
            members[cid.decode()] = int(joined) if joined.isdigit() else 0
        return members

    # -- delivery ---------------------------------------------------------------------------

    async def publish(self, room: str, payload: dict[str, Any]) -> None:
        await self._publish(self._say_channel(room), codec.dumps(payload))

    async def send_to(self, connection_id: str, message: Any) -> bool:
        if not await self._redis.hexists(self._key("connections"), connection_id):
            return False
        envelope = codec.dumps({"to": connection_id, "message": message})
        await self._publish(self._key("direct"), envelope)
        return True

    async def send_all(self, message: Any) -> None:
        await self._publish(self._key("all"), codec.dumps({"push": message}))

    async def _publish(self, channel: str, body: bytes) -> int:
        return await self._redis.publish(channel, self.token + body)

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
            "url": self.url,
            "cluster": self.cluster,
            "subscriptions": sorted(self._channels),
            "received": dict(self.received),
        }

    # -- the subscriber ------------------------------------------------------------------------

    async def _subscribe(self, channel: str) -> None:
        """Subscribe, and return once Redis confirms: a PUBLISH sent after this returns (by a
        client who saw the join succeed) is then sure to reach this server."""
        self._channels.add(channel)
        if self._pubsub is None:
            return  # the listener subscribes to every channel when it reconnects
        confirmed = asyncio.get_running_loop().create_future()
        self._confirmations[channel.encode()] = confirmed
        try:
            await self._pubsub.subscribe(channel)
            await asyncio.wait_for(confirmed, 5)
        finally:
            self._confirmations.pop(channel.encode(), None)

    async def _unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(channel)

    async def _listen_forever(self) -> None:
        backoff = 0.1
        while not self._stopping:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.state = "reconnecting"
                self.problem = f"lost Redis at {self.url}: {exc}"
                log.error("%s; retrying in %.1f s", self.problem, backoff)
                await asyncio.sleep(backoff * (0.5 + random.random() / 2))
                backoff = min(backoff * 2, 5)
            else:
                backoff = 0.1

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(*self._channels)
            self._pubsub = pubsub
            if self.state == "reconnecting":
                await self._restore()
            self.state, self.problem = "ok", None
            self._ready.set()
            async for message in pubsub.listen():
                kind = message["type"]
                if kind == "message":
                    await self._on_message(message["channel"].decode(), message["data"])
                elif kind == "subscribe":
                    confirmed = self._confirmations.get(message["channel"])
                    if confirmed is not None and not confirmed.done():
                        confirmed.set_result(None)
        finally:
            self._pubsub = None
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _on_message(self, channel: str, data: bytes) -> None:
        if not data.startswith(self.token):
            self.received["foreign"] += 1
            return
        body = data[len(self.token) :]
        prefix = self.cluster + ":"
        name = channel[len(prefix) :]
        try:
            if name.startswith("say:"):
                self.received["say"] += 1
                await self._delegate.deliver_room(name[4:], body)
            elif name == "direct":
                self.received["direct"] += 1
                envelope = codec.loads(body)
                self._delegate.deliver_to(envelope["to"], envelope["message"])
            elif name == "all":
                self.received["all"] += 1
                envelope = codec.loads(body)
                if "push" in envelope:
                    self._delegate.deliver_all(envelope["push"])
                elif "destroyed" in envelope and envelope.get("by") != self.server_id:
                    await self._delegate.room_destroyed(envelope["destroyed"])
            elif name.startswith("canary:"):
                self._canary_heard = int(body)
        except Exception:
            log.exception("could not deliver a message from %s", channel)

    # -- lease, reaping, canary, restore --------------------------------------------------------

    async def _announce(self) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(self._key("server", self.server_id), b"1", px=self.lease_ms)
        pipe.sadd(self._key("servers"), self.server_id)
        await pipe.execute()

    async def _keep_lease(self) -> None:
        await self._announce()
        for raw in await self._redis.smembers(self._key("servers")):
            other = raw.decode()
            if other == self.server_id or await self._redis.exists(self._key("server", other)):
                continue
            if await self._redis.srem(self._key("servers"), other):
                removed = await self._forget_server(other)
                log.warning(
                    "server %s stopped renewing its lease: removed its %d memberships",
                    other,
                    removed,
                )

    async def _forget_server(self, server_id: str) -> int:
        """Remove every membership and connection ``server_id`` owned; how many members."""
        owned_key = self._key("server", server_id, "members")
        held_key = self._key("server", server_id, "connections")
        owned = await self._redis.smembers(owned_key)
        held = await self._redis.smembers(held_key)
        pipe = self._redis.pipeline(transaction=False)
        for entry in owned:
            room, _, cid = entry.decode().partition("\0")
            pipe.hdel(self._key("room", room), cid)
        if held:
            pipe.hdel(self._key("connections"), *held)
        pipe.delete(owned_key, held_key)
        await pipe.execute()
        return len(owned)

    async def _canary(self) -> None:
        if self.state != "ok":
            return
        if self._canary_sent and self._canary_heard != self._canary_sent:
            self.state = "deaf"
            self.problem = "this server no longer hears its own messages through Redis"
            log.error("%s: resubscribing", self.problem)
            if self._pubsub is not None:
                await self._pubsub.aclose()  # the listener reconnects and resubscribes
            return
        self._canary_sent += 1
        await self._publish(self._key("canary", self.server_id), str(self._canary_sent).encode())

    async def _restore(self) -> None:
        """Write back this server's rooms and memberships after Redis came back."""
        rooms, memberships = self._delegate.local_state()
        connections = self._delegate.local_connections()
        await self._forget_server(self.server_id)  # what was removed while Redis was away
        pipe = self._redis.pipeline(transaction=False)
        if rooms:
            pipe.sadd(self._key("rooms"), *rooms)
        for room, cid, joined in memberships:
            pipe.hset(self._key("room", room), cid, f"{self.server_id}|{joined}")
            pipe.sadd(self._key("server", self.server_id, "members"), f"{room}\0{cid}")
        for cid in connections:
            pipe.hset(self._key("connections"), cid, self.server_id)
            pipe.sadd(self._key("server", self.server_id, "connections"), cid)
        await pipe.execute()
        await self._announce()
        self._canary_sent = self._canary_heard = 0
        log.warning(
            "Redis is back: restored %d rooms and %d memberships", len(rooms), len(memberships)
        )

    async def _every(self, seconds: float, job: Any) -> None:
        while not self._stopping:
            await asyncio.sleep(seconds)
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s failed: %s", job.__name__.strip("_"), exc)
