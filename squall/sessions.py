"""Sessions: one dict per fingerprint, shared by a browser's HTTP requests and sockets (§4).

``connection.session`` is that dict. On one server, every connection of a fingerprint holds the
very same dict object, so what an HTTP action stores there the browser's open socket sees at
once. The dict is kept in a :class:`SessionStore` as JSON for ``general.sessionTtl`` ms after its
last use (a connection open on it counts as use), so a reconnect finds it again: in memory by
default, in Redis when Redis is enabled, so that every server sees it and it outlives restarts.

When it is saved (PROTOCOL.md §4; Django saves the same way): after every action that does not
fail with a server error (an exception that is not an ``ActionError``/``PermissionError``), after
``create`` and ``destroy`` connection middleware, and after chat ``join``, ``leave`` and
``on_say_receive`` hooks. With Redis, the dict is read again before each of those, so a change
another server saved is seen; concurrent writers of one session: the last save wins. A save
costs nothing unless ``connection.session`` was read since the last one (the connection notes
it in ``session_used``): only then is the dict encoded, and only an encoding that differs from
the stored one is written. A value JSON cannot hold, or a session over
``general.sessionMaxBytes`` once encoded, fails the save with :class:`SessionError` naming the
cause, and the session is put back as it was last saved.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from .connections import Connection
from .errors import SquallError
from .middleware import ChatMiddleware, resolve

__all__ = [
    "MemorySessionStore",
    "RedisSessionStore",
    "SessionError",
    "SessionStore",
    "Sessions",
    "UnavailableSession",
    "with_sessions",
]

log = logging.getLogger("squall.sessions")

#: An empty session, encoded: stored only to say that a session was emptied.
EMPTY = b"{}"

#: Compact, and refusing NaN and infinities, which are not JSON (made once: ``json.dumps``
#: with options builds an encoder per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


class SessionError(SquallError):
    """A session that cannot be saved: a value JSON cannot hold, or too many bytes."""


class SessionStore(Protocol):
    """Where sessions live between uses, as JSON bytes, each expiring ``ttl_ms`` after its
    last read or write."""

    #: True when other servers share the store (then a session is read again before each use).
    shared: bool

    async def get(self, fingerprint: str, ttl_ms: int) -> bytes | None:
        """The stored session, its expiry pushed back by ``ttl_ms``; None when there is none."""

    async def put(self, fingerprint: str, data: bytes, ttl_ms: int) -> None:
        """Store the session for ``ttl_ms``."""

    async def touch(self, fingerprints: Iterable[str], ttl_ms: int) -> None:
        """Push back the expiry of these sessions (those of open connections)."""

    async def close(self) -> None:
        """Release what the store holds (connections)."""


class MemorySessionStore:
    """Sessions in this process: the default, for one server."""

    shared = False

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, tuple[bytes, float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, fingerprint: str, ttl_ms: int) -> bytes | None:
        entry = self._entries.get(fingerprint)
        if entry is None:
            return None
        now = self._clock()
        if entry[1] <= now:
            del self._entries[fingerprint]
            return None
        self._entries[fingerprint] = (entry[0], now + ttl_ms / 1000)
        return entry[0]

    async def put(self, fingerprint: str, data: bytes, ttl_ms: int) -> None:
        self._entries[fingerprint] = (data, self._clock() + ttl_ms / 1000)

    async def touch(self, fingerprints: Iterable[str], ttl_ms: int) -> None:
        now = self._clock()
        for fingerprint in fingerprints:
            entry = self._entries.get(fingerprint)
            if entry is not None:
                self._entries[fingerprint] = (entry[0], now + ttl_ms / 1000)
        # forget the expired ones, so memory follows the live sessions
        for fingerprint in [f for f, (_, expires) in self._entries.items() if expires <= now]:
            del self._entries[fingerprint]

    async def close(self) -> None:
        self._entries.clear()


class RedisSessionStore:
    """Sessions in Redis, under ``<clusterName>:session:<fingerprint>``, shared by every server
    of the cluster and kept across restarts; each key expires with the session (``PX``)."""

    shared = True

    def __init__(self, url: str, cluster: str) -> None:
        import redis.asyncio as aioredis  # only needed when Redis is on

        self.prefix = f"{cluster}:session:"
        self._redis = aioredis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)

    async def get(self, fingerprint: str, ttl_ms: int) -> bytes | None:
        return await self._redis.getex(self.prefix + fingerprint, px=ttl_ms)

    async def put(self, fingerprint: str, data: bytes, ttl_ms: int) -> None:
        await self._redis.set(self.prefix + fingerprint, data, px=ttl_ms)

    async def touch(self, fingerprints: Iterable[str], ttl_ms: int) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for fingerprint in fingerprints:
                pipe.pexpire(self.prefix + fingerprint, ttl_ms)
            await pipe.execute()

    async def close(self) -> None:
        await self._redis.aclose()


class UnavailableSession(dict[str, Any]):
    """The session of a connection whose store could not be read (Redis unreachable).

    Any use of it raises the store's error, so what needs the session fails naming the cause
    while actions that do not touch it are served; it is read again at the connection's next
    action or hook.
    """

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def _unavailable(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error.with_traceback(None)

    __getitem__ = __setitem__ = __delitem__ = __contains__ = __iter__ = __len__ = _unavailable
    get = keys = values = items = update = setdefault = pop = popitem = clear = _unavailable
    copy = _unavailable

    def __repr__(self) -> str:
        return f"<session unavailable: {self.error}>"


@dataclasses.dataclass(eq=False)
class _Live:
    """The one dict of a fingerprint on this server, and what the store held last we looked."""

    data: dict[str, Any]
    stored: bytes | None
    users: int = 0
    #: a save failed (the store was unreachable): the next save of any holder writes it
    unsaved: bool = False

    @property
    def unavailable(self) -> bool:
        return isinstance(self.data, UnavailableSession)


class Sessions:
    """The sessions of one server: which dict each connection holds, when it is saved.

    When the store cannot be reached (Redis down), a connection that already holds its session
    goes on with it as last read; one that does not gets an :class:`UnavailableSession`; a save
    fails with the store's error (the change stays in the dict, saved by a later save).

    Args:
        store: where sessions live between uses.
        ttl_ms: ``general.sessionTtl``, how long a session is kept after its last use.
        max_bytes: ``general.sessionMaxBytes``, the largest session, JSON-encoded.
    """

    def __init__(self, store: SessionStore, ttl_ms: int, max_bytes: int) -> None:
        self.store = store
        self.ttl_ms = ttl_ms
        self.max_bytes = max_bytes
        self._live: dict[str, _Live] = {}
        self._held: dict[Connection, _Live] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._touching: asyncio.Task[None] | None = None
        self._outage = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Keep the sessions of open connections alive (touched every half TTL, at most a
        minute apart)."""
        self._schedule()

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._touching is not None:
            await asyncio.wait([self._touching], timeout=2)
        await self.store.close()

    def _schedule(self) -> None:
        interval = min(self.ttl_ms / 2000, 60.0)
        self._timer = asyncio.get_running_loop().call_later(interval, self._touch_live)

    def _touch_live(self) -> None:
        self._touching = asyncio.get_running_loop().create_task(self._touch())
        self._schedule()

    async def _touch(self) -> None:
        try:
            await self.store.touch(list(self._live), self.ttl_ms)
        except Exception as exc:
            self._lost(exc)
        else:
            self._found()

    def _lost(self, error: Exception) -> None:
        """One warning per outage, not one per request."""
        if not self._outage:
            self._outage = True
            log.warning("cannot reach the session store (%s): sockets keep their sessions", error)

    def _found(self) -> None:
        if self._outage:
            self._outage = False
            log.info("the session store answers again")

    # -- connections -------------------------------------------------------------------------

    def holds(self, connection: Connection) -> bool:
        return connection in self._held

    async def open(self, connection: Connection) -> None:
        """Give ``connection`` its fingerprint's session (read from the store unless another
        connection here holds it). Call :meth:`close` when the connection ends."""
        fingerprint = connection.fingerprint
        live = self._live.get(fingerprint)
        if live is None or live.unavailable:
            stored, data = await self._read(fingerprint)
            live = self._live.get(fingerprint)  # another open may have read it meanwhile
            if live is None:
                live = self._live[fingerprint] = _Live(data, stored)
            elif live.unavailable and not isinstance(data, UnavailableSession):
                self._recovered(live, data, stored)
        live.users += 1
        self._held[connection] = live
        connection.session = live.data

    async def refresh(self, connection: Connection) -> None:
        """Read the session again: when other servers share the store, or when it could not be
        read before (a no-op otherwise)."""
        live = self._held.get(connection)
        if live is None:
            return
        if live.unavailable:
            stored, data = await self._read(connection.fingerprint)
            if not isinstance(data, UnavailableSession):
                self._recovered(live, data, stored)
            return
        if not self.store.shared:
            return
        try:
            stored = await self.store.get(connection.fingerprint, self.ttl_ms)
        except Exception as exc:
            self._lost(exc)  # go on with the session as last read
            return
        self._found()
        if stored is None and live.stored is not None:
            # Gone while held (a Redis that restarted empty): this copy is the truth now, and
            # the next save writes it back. A session cleared elsewhere is stored as {}.
            live.stored = None
        elif stored != live.stored:  # another server saved it
            live.stored = stored
            live.data.clear()
            live.data.update(_decoded(stored))

    async def _read(self, fingerprint: str) -> tuple[bytes | None, dict[str, Any]]:
        try:
            stored = await self.store.get(fingerprint, self.ttl_ms)
        except Exception as exc:
            self._lost(exc)
            return None, UnavailableSession(exc)
        self._found()
        return stored, _decoded(stored)

    def _recovered(self, live: _Live, data: dict[str, Any], stored: bytes | None) -> None:
        """The store answers again: every connection holding this session gets the real one."""
        live.data, live.stored = data, stored
        for connection, held in self._held.items():
            if held is live:
                connection.session = data

    async def save(self, connection: Connection) -> None:
        """Store the session if it may have changed since it was last read or saved (it was
        read through ``connection.session`` since, or an earlier save failed) and its encoding
        differs from what is stored.

        Raises:
            SessionError: a value JSON cannot hold, or over ``max_bytes``; the session is put
                back as it was last saved.
        """
        live = self._held.get(connection)
        if live is None or live.unavailable or not (connection.session_used or live.unsaved):
            return
        try:
            encoded = self._encoded(live.data)
        except SessionError:
            self.revert(connection)
            raise
        await self._store(connection, live, encoded)

    def revert(self, connection: Connection) -> None:
        """Put the session back as it was last read or saved (the changes made through
        ``connection`` since are not kept; a connection that did not read it changed nothing)."""
        live = self._held.get(connection)
        if live is not None and not live.unavailable and connection.session_used:
            connection.session_used = live.unsaved = False
            live.data.clear()
            live.data.update(_decoded(live.stored))

    def release(self, connection: Connection) -> _Live | None:
        """Let go of the session of ``connection`` without saving it (it was just saved)."""
        live = self._held.pop(connection, None)
        if live is not None:
            live.users -= 1
            if live.users == 0 and self._live.get(connection.fingerprint) is live:
                del self._live[connection.fingerprint]
        return live

    async def close(self, connection: Connection) -> None:
        """``connection`` ended: save what is left unsaved, and let go of the session."""
        live = self.release(connection)
        if live is None or live.unavailable or not (connection.session_used or live.unsaved):
            return
        try:
            await self._store(connection, live, self._encoded(live.data))
        except SessionError as exc:
            log.warning("session of %s not saved at close: %s", connection.id, exc)
        except Exception as exc:
            self._lost(exc)

    async def _store(self, connection: Connection, live: _Live, encoded: bytes) -> None:
        """Persist ``encoded`` for ``connection``; what is read from now on is saved next time.
        When the store fails, the session stays unsaved for the next save of any connection
        holding it (this one may be an HTTP request about to end)."""
        connection.session_used = live.unsaved = False
        try:
            await self._persist(connection.fingerprint, live, encoded)
        except BaseException:
            live.unsaved = True
            raise

    async def _persist(self, fingerprint: str, live: _Live, encoded: bytes) -> None:
        """Write a changed session. One that never held anything is not stored (a request
        without a cookie must not leave a session behind for a day); one that was emptied is,
        as ``{}``, so that every server sees it emptied."""
        if encoded == live.stored or (encoded == EMPTY and live.stored is None):
            return
        await self.store.put(fingerprint, encoded, self.ttl_ms)
        live.stored = encoded

    # -- the harness and server code ----------------------------------------------------------

    async def read(self, fingerprint: str) -> dict[str, Any]:
        """A copy of the session of ``fingerprint`` ({} when there is none)."""
        live = self._live.get(fingerprint)
        if live is not None and not live.unavailable and not self.store.shared:
            return json.loads(json.dumps(live.data))
        return _decoded(await self.store.get(fingerprint, self.ttl_ms))

    async def write(self, fingerprint: str, values: dict[str, Any]) -> None:
        """Make ``values`` the session of ``fingerprint`` (as a login elsewhere would)."""
        encoded = self._encoded(values)
        live = self._live.get(fingerprint)
        if live is None or live.unavailable:
            await self.store.put(fingerprint, encoded, self.ttl_ms)
            if live is not None:
                self._recovered(live, _decoded(encoded), encoded)
            return
        await self._persist(fingerprint, live, encoded)
        live.data.clear()
        live.data.update(_decoded(encoded))

    def _encoded(self, data: dict[str, Any]) -> bytes:
        try:
            encoded = _ENCODER.encode(data).encode()
        except (TypeError, ValueError) as exc:
            why = _culprit(data, exc)
            raise SessionError(f"connection.session cannot be saved: {why}") from None
        if len(encoded) > self.max_bytes:
            raise SessionError(
                f"connection.session is {len(encoded)} bytes as JSON, over the "
                f"{self.max_bytes} of general.sessionMaxBytes"
            )
        return encoded


def with_sessions(middleware: Iterable[ChatMiddleware], sessions: Sessions) -> list[ChatMiddleware]:
    """Chat middleware whose ``join``, ``leave`` and ``on_say_receive`` hooks see the session
    as stored (read again first) and save what they change in it (the ``say`` hook, run once
    per recipient, is left as it is: its changes are saved with that connection's next save)."""

    def wrapped(hook: Callable[..., Any] | None) -> Callable[..., Awaitable[Any]] | None:
        if hook is None:
            return None

        async def run(connection: Connection, *args: Any) -> Any:
            await sessions.refresh(connection)
            try:
                return await resolve(hook(connection, *args))
            finally:
                await sessions.save(connection)

        return run

    return [
        dataclasses.replace(
            m,
            join=wrapped(m.join),
            leave=wrapped(m.leave),
            on_say_receive=wrapped(m.on_say_receive),
        )
        for m in middleware
    ]


def _decoded(stored: bytes | None) -> dict[str, Any]:
    if stored is None:
        return {}
    value = json.loads(stored)
    return value if isinstance(value, dict) else {}


def _culprit(data: dict[str, Any], exc: Exception) -> str:
    """Which key holds what JSON cannot hold, for the error message."""
    for key, value in data.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as problem:
            return f"the value of {key!r} is not JSON ({problem})"
    return f"it is not JSON ({exc})"
