"""What waits for Redis, handed over as soon as it takes it.

Two things wait (:mod:`squall.backlog` says how each is kept): messages for the other servers,
in an :class:`~squall.backlog.Outbox`, and changes to this server's memberships and
connections, in the :class:`~squall.redis_members.MemberStore`'s journal. :class:`CatchUp`
publishes through the outbox whenever it is not empty (so a message never overtakes an older
one), writes the journal when a change is made, and keeps retrying both in one background task
while Redis refuses them. While the subscriber is down it does nothing: the broker writes
everything back, and drains the outbox, once the subscriber is up again.

A queued message is published as ``<token>@<origin>|<body>``: its sender delivered it to its
own members when it was said, and skips the copy Redis brings back (:meth:`CatchUp.unwrap`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from .backlog import Outbox
from .backoff import Backoff
from .errors import BrokerUnavailable
from .redis_members import MemberStore
from .redis_subscriber import TROUBLE

__all__ = ["CatchUp"]

log = logging.getLogger("squall.redis")

SEPARATOR = b"|"
#: Prefix of a message published from the outbox: ``@<origin>|``.
QUEUED = b"@"
ORIGIN_BYTES = 16
#: A write or publish that failed while the subscriber was fine is retried this way.
RETRY_DELAYS = (0.05, 1.0)
#: An outbox drains in batches of at most this many messages, about this many bytes.
DRAIN_MESSAGES = 100
DRAIN_BYTES = 1 << 20


class CatchUp:
    """This server's outbox and journal, and the task that hands them to Redis.

    Args:
        outbox: the messages for other servers kept while Redis cannot take them.
        members: the store whose journal holds this server's unwritten changes.
        token: the cluster token every message starts with.
        is_up: whether the broker's subscriber is up (state ``ok``): only then is anything
            written here; otherwise the broker's write-back does it.
    """

    def __init__(
        self, outbox: Outbox, members: MemberStore, token: bytes, is_up: Callable[[], bool]
    ) -> None:
        self.outbox = outbox
        self._members = members
        self._token = token
        self._is_up = is_up
        self._origin = secrets.token_hex(ORIGIN_BYTES // 2).encode()
        self._queued_prefix = token + QUEUED + self._origin + SEPARATOR
        self._redis: aioredis.Redis | None = None
        self._drain_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def attach(self, client: aioredis.Redis) -> None:
        self._redis = client

    @property
    def pending(self) -> bool:
        """Whether anything waits: a message in the outbox or a change in the journal."""
        return bool(self._members.journal or self.outbox)

    def unwrap(self, body: bytes) -> bytes | None:
        """A message's body (after the token) without its queued prefix, or None when this
        server queued it: said here while Redis was away, it was delivered here already."""
        if not body.startswith(QUEUED):
            return body
        if body[1 : 1 + ORIGIN_BYTES] == self._origin:
            return None
        return body[2 + ORIGIN_BYTES :]

    async def send(
        self, channel: str, body: bytes, deliver_here: Callable[[], Awaitable[None]] | None
    ) -> None:
        """Publish ``body``; while Redis cannot take it (or older messages still wait), deliver
        it here at once and keep it in the outbox for the other servers, in order.

        Raises:
            BrokerUnavailable: the outbox is full; the message went nowhere.
        """
        if self._is_up() and not self.outbox:
            try:
                await self._redis.publish(channel, self._token + body)
                return
            except TROUBLE as exc:
                log.warning("could not publish to %s (%s): queued for later", channel, exc)
        refusal = self.outbox.refusal(len(body))
        if refusal is not None:
            raise BrokerUnavailable(f"{refusal}; this message was not sent")
        self.outbox.append(channel, body)
        if self._is_up():
            self.start()
        if deliver_here is not None:
            await deliver_here()

    async def flush(self, change: int) -> None:
        """While Redis is up, return once it has ``change`` (and whatever else waits with it);
        a failure leaves it in the journal, retried in the background."""
        if not self._is_up():
            return  # written back when the subscriber is up again
        try:
            await self._members.write(change)
        except TROUBLE as exc:
            log.warning("could not write to Redis (%s): retrying until it takes it", exc)
            self.start()

    async def drain(self) -> int:
        """Publish what waits, oldest first, each batch all or nothing (MULTI); how many."""
        sent = 0
        async with self._drain_lock:
            while self.outbox:
                batch = self.outbox.peek(DRAIN_MESSAGES, DRAIN_BYTES)
                pipe = self._redis.pipeline(transaction=True)
                for channel, body in batch:
                    pipe.publish(channel, self._queued_prefix + body)
                await pipe.execute()
                self.outbox.drop(len(batch))
                sent += len(batch)
        return sent

    def start(self) -> None:
        """Start writing the journal and the outbox in the background, unless already doing so."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._keep_catching_up())

    def stop(self) -> list[asyncio.Task[None]]:
        """Try no more; the background task, if any, for the caller to cancel (the flag ends it
        even when redis-py swallows that cancellation)."""
        self._stopping = True
        return [self._task] if self._task else []

    async def _keep_catching_up(self) -> None:
        delays = Backoff(*RETRY_DELAYS)
        while self.pending and self._is_up() and not self._stopping:
            try:
                await self._members.write()
                await self.drain()
            except TROUBLE as exc:
                delay = delays.next()
                log.debug("Redis still refuses writes (%s): retrying in %.2f s", exc, delay)
                await asyncio.sleep(delay)
        # Not up any more: the subscriber writes everything back when it is up again.
