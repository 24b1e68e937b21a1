"""The Redis broker's subscriber: one connection in subscribe mode, kept subscribed.

A connection that has subscribed can do nothing else, so the broker keeps it apart from the
pool its commands use, and this module owns it: the channels this server listens to, the
listener that reconnects whenever Redis drops it (or the broker finds it deaf), the
confirmations joins wait for, and the catching up a recovery waits for. What a message means,
and what to do once every channel is subscribed again, is the broker's (the ``on_message``,
``on_subscribed`` and ``on_lost`` callbacks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .backoff import Backoff

__all__ = ["TROUBLE", "Subscriber"]

log = logging.getLogger("squall.redis")

#: What a failing Redis command raises.
TROUBLE = (RedisError, OSError)

#: Reconnection attempts start quick and are never more than half a second apart: a server is
#: subscribed again within that of Redis answering, so the window in which a say can only
#: wait in the outbox stays short.
RECONNECT_DELAYS = (0.05, 0.5)
#: How long a join waits for Redis to confirm its subscription before the listener takes over.
CONFIRM_WAIT = 5.0


class Subscriber:
    """Keeps this server subscribed to ``channels`` and hands each message to the broker.

    Args:
        on_message: awaited with ``(channel, data)`` for each message, in the order received.
        on_subscribed: awaited once every channel is subscribed after a (re)connection; an
            exception drops the connection and counts as losing Redis.
        on_lost: told why the subscription ended, before each reconnection attempt.
    """

    def __init__(
        self,
        on_message: Callable[[str, bytes], Awaitable[None]],
        on_subscribed: Callable[[], Awaitable[None]],
        on_lost: Callable[[str], None],
    ) -> None:
        self.channels: set[str] = set()
        self._on_message = on_message
        self._on_subscribed = on_subscribed
        self._on_lost = on_lost
        self._redis: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._confirmations: dict[bytes, asyncio.Future[None]] = {}
        self._pongs: dict[bytes, asyncio.Future[None]] = {}  # PING payload -> caught_up waiting
        self._stopping = False

    def attach(self, client: aioredis.Redis) -> None:
        self._redis = client

    def stop(self) -> None:
        """Reconnect no more (the broker cancels the listener too; the flag ends it even when
        redis-py swallows that cancellation)."""
        self._stopping = True

    async def subscribe(self, channel: str, confirm: bool) -> None:
        """Listen to ``channel``; with ``confirm``, return once Redis confirms: a PUBLISH sent
        after this returns (by a client who saw the join succeed) is then sure to reach this
        server. Without it (the listener is restoring: it confirms this one too) return at
        once."""
        self.channels.add(channel)
        pubsub = self._pubsub
        if pubsub is None:
            return  # the listener subscribes to every channel when it connects
        if not confirm:
            with contextlib.suppress(*TROUBLE):
                await pubsub.subscribe(channel)
            return
        confirmed = asyncio.get_running_loop().create_future()
        self._confirmations[channel.encode()] = confirmed
        try:
            await pubsub.subscribe(channel)
            await asyncio.wait_for(confirmed, CONFIRM_WAIT)
        except (*TROUBLE, TimeoutError) as exc:
            # The subscriber is in trouble: the listener (or the canary) notices, reconnects
            # and subscribes to every channel, this one included.
            log.warning("could not subscribe to %s yet: %s", channel, exc or type(exc).__name__)
        finally:
            self._confirmations.pop(channel.encode(), None)

    async def confirmed(self, channel: str) -> None:
        """Return once a subscription to ``channel`` on its way (another join's) is confirmed,
        at once if none is."""
        pending = self._confirmations.get(channel.encode())
        if pending is not None:
            await asyncio.shield(pending)

    async def caught_up(self) -> None:
        """Return once every message Redis published before this call has been handed to
        ``on_message``. Commands and the subscription are two connections, each answered in
        order but not in step: a command's reply (a history read) can arrive before the
        messages published ahead of it. A PING sent on the subscription now comes back after
        them all."""
        pubsub = self._pubsub
        if pubsub is None:
            return  # no subscription: what was published meanwhile is not coming here at all
        payload = secrets.token_hex(8).encode()
        arrived = asyncio.get_running_loop().create_future()
        self._pongs[payload] = arrived
        try:
            await pubsub.ping(payload)
            await asyncio.wait_for(arrived, CONFIRM_WAIT)
        except (*TROUBLE, TimeoutError) as exc:
            # The subscriber is in trouble: the listener (or the canary) notices and reconnects.
            log.warning("could not catch up with the subscription: %s", exc or type(exc).__name__)
        finally:
            self._pongs.pop(payload, None)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        if self._pubsub is not None:
            with contextlib.suppress(*TROUBLE):
                await self._pubsub.unsubscribe(channel)

    async def resubscribe(self) -> None:
        """Drop the connection: the listener reconnects and subscribes to every channel."""
        if self._pubsub is not None:
            await self._pubsub.aclose()

    async def listen_forever(self) -> None:
        """Listen, reconnecting whenever the subscription ends, until :meth:`stop`."""
        delays = Backoff(*RECONNECT_DELAYS, jitter=True)
        while not self._stopping:
            try:
                await self._listen(delays)
                reason = "Redis closed this server's subscription"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken connection raises more than RedisError
                reason = str(exc) or type(exc).__name__
            if self._stopping:
                return
            self._on_lost(reason)
            await asyncio.sleep(delays.next())

    async def _listen(self, delays: Backoff) -> None:
        pubsub = self._redis.pubsub()
        try:
            channels = set(self.channels)
            await pubsub.subscribe(*channels)
            self._pubsub = pubsub
            # joins and leaves made while that subscribe was on its way
            if added := self.channels - channels:
                await pubsub.subscribe(*added)
            if removed := channels - self.channels:
                await pubsub.unsubscribe(*removed)
            awaiting = {channel.encode() for channel in channels | added}
            async for message in pubsub.listen():
                kind = message["type"]
                if kind == "message":
                    await self._on_message(message["channel"].decode(), message["data"])
                elif kind == "pong":
                    arrived = self._pongs.get(message["data"])
                    if arrived is not None and not arrived.done():
                        arrived.set_result(None)
                elif kind == "subscribe":
                    confirmed = self._confirmations.get(message["channel"])
                    if confirmed is not None and not confirmed.done():
                        confirmed.set_result(None)
                    if awaiting:
                        awaiting.discard(message["channel"])
                        if not awaiting:
                            await self._on_subscribed()
                            delays.reset()
        finally:
            self._pubsub = None
            for arrived in self._pongs.values():  # nothing more comes on this connection
                if not arrived.done():
                    arrived.set_result(None)
            with contextlib.suppress(Exception):
                await pubsub.aclose()
