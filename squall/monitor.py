"""The server's view of itself, once a second: what ``/metrics`` and the admin page read.

A :class:`Monitor` runs while ``servers.web.metrics`` or ``servers.web.admin`` is on. Each
second it

1. refreshes what has to be asked for (the number of rooms from the broker, the Redis round
   trip) and notes the event-loop lag (the watchdog's, and its own timer's lateness);
2. takes this process's snapshot (:meth:`squall.metrics.Stats.snapshot`); with ``--workers N``
   it writes it to the workers' shared folder and reads the others', so every worker sees the
   whole machine (:func:`squall.metrics.merge`);
3. turns the difference with earlier snapshots into a sample of rates and quantiles, keeps the
   last ten minutes of samples, and pushes the sample to the admin page's sockets.

A scrape does not wait for the next second: it calls :meth:`Monitor.refresh`, then
:meth:`Monitor.machine` takes a fresh snapshot of this process, and shares it before showing it
(the other workers' are at most a second old).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .metrics import TOP_ROOMS, merge, quantile, rss_bytes, top_rooms

__all__ = ["Monitor", "SharedSnapshots", "sample"]

log = logging.getLogger("squall.monitor")

#: How many snapshots back the per-action rates and quantiles of a sample look (seconds).
WINDOW = 10

#: How many rooms each process writes, by members: the machine's top rooms are picked from these.
ROOMS_SHARED = 5 * TOP_ROOMS


class SharedSnapshots:
    """The ``--workers`` folder where each worker leaves its snapshot for the others.

    Each worker writes ``worker-<pid>.json`` (atomically: a temporary file, then a rename).
    A worker that stops renames its file ``retired-<pid>-<ns>.json``; one that crashed leaves
    its file behind. A file whose process is gone, or that has not been rewritten for
    ``stale`` seconds, counts as retired: its counters still add up (a total never goes down
    when a worker is replaced), its gauges no longer do.
    """

    def __init__(self, directory: Path, stale: float = 5.0) -> None:
        self.directory = Path(directory)
        self.stale = stale
        self.pid = os.getpid()
        self.path = self.directory / f"worker-{self.pid}.json"

    def claim(self) -> None:
        """Retire a file left under this pid by an earlier process (a pid reused)."""
        if self.path.exists():
            self.retire()

    def write(self, snapshot: Mapping[str, Any]) -> None:
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(snapshot))
        os.replace(temporary, self.path)

    def retire(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.path, self.directory / f"retired-{self.pid}-{time.time_ns()}.json")

    def others(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The other processes' snapshots: ``(live, retired)``."""
        live: list[dict[str, Any]] = []
        retired: list[dict[str, Any]] = []
        now = time.time()
        for path in self.directory.glob("*.json"):
            if path == self.path:
                continue
            try:
                snapshot = json.loads(path.read_text())
                modified = path.stat().st_mtime
            except (OSError, ValueError):
                continue  # replaced or removed while we looked: next second's read has it
            alive = path.name.startswith("worker-") and now - modified < self.stale
            (live if alive and _running(snapshot["pid"]) else retired).append(snapshot)
        return live, retired


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Monitor:
    """Samples the server once a second (see the module docstring).

    Args:
        app: the :class:`~squall.app.Squall` whose state is read.
        shared: the ``--workers`` folder, or None for a single process.
        interval: seconds between two samples.
        keep: how many samples the admin page can look back on.
    """

    def __init__(
        self,
        app: Any,
        shared: SharedSnapshots | None = None,
        interval: float = 1.0,
        keep: int = 600,
    ) -> None:
        self.app = app
        self.shared = shared
        self.interval = interval
        self.history: deque[dict[str, Any]] = deque(maxlen=keep)
        #: The admin page's sockets, which get every sample (set by the transport).
        self.watchers: Callable[[], Iterable[Any]] = tuple
        self.loop_lag = 0.0
        self.room_count: int | None = None
        self.redis_rtt: float | None = None
        self._previous: deque[dict[str, Any]] = deque(maxlen=WINDOW + 1)
        self._greeted: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        app.stats.live = self.live

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        if self.shared is not None:
            self.shared.claim()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.shared is not None:
            self.shared.write(self.app.stats.snapshot())
            self.shared.retire()

    # -- reading -----------------------------------------------------------------------------------

    def live(self) -> dict[str, Any]:
        """The live part of this process's snapshot (installed as ``Stats.live``)."""
        app = self.app
        rooms = app.rooms
        members = {room: rooms.local_members(room) for room in rooms.local_rooms()}
        broker = app.broker
        executor = app.executor
        return {
            "gauges": {
                "in_flight": app.processor.in_flight,
                "pool_busy": executor.busy,
                "pool_size": executor.size,
                "memberships": sum(members.values()),
                "rooms": self.room_count,
                "loop_lag": self.loop_lag,
                "redis_rtt": self.redis_rtt,
                "rss_bytes": rss_bytes(),
            },
            "connections": {
                "web": 0,
                "webSocket": 0,
                **{kind: n for kind, n in app.connections.counts().items() if kind != "total"},
            },
            "rooms": dict(top_rooms(members, ROOMS_SHARED)),
            "redis": broker.state if broker.kind == "redis" else None,
            "errors": app.recent_errors.errors(),
        }

    def machine(self) -> dict[str, Any]:
        """This machine's snapshot now: this process's, fresh, and the other workers'.

        With ``--workers`` this process's snapshot is shared before it is shown: whatever a
        scrape saw stays counted if this worker dies right after (its last once-a-second write
        may be older than what it just showed), so a total never goes down, a crash included.
        """
        own = self.app.stats.snapshot()
        if self.shared is None:
            return merge([own])
        self.shared.write(own)
        live, retired = self.shared.others()
        return merge([own, *live], retired)

    def hello(self) -> dict[str, Any]:
        """The first push to an admin socket: who this is, and the samples so far."""
        app = self.app
        return {
            "context": "admin",
            "event": "hello",
            "server": {
                "id": app.id,
                "name": app.name,
                "version": app.version,
                "started": app.started_at,
                "env": app.config.env,
                "interval": self.interval,
            },
            "history": list(self.history),
            "errors": self._previous[-1]["errors"] if self._previous else [],
        }

    # -- the second --------------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.interval
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            late = max(0.0, loop.time() - due)
            due = max(due + self.interval, loop.time())  # after a long stall, no burst
            try:
                await self.tick(late)
            except Exception:
                log.exception("taking the server's sample failed")

    async def tick(self, late: float = 0.0) -> None:
        """Take one sample now (the timer does every second; ``late``: how late it ran)."""
        watchdog = self.app.watchdog
        self.loop_lag = max(late, watchdog.take_lag() if watchdog is not None else 0.0)
        await self.refresh()
        current = self.machine()
        if self._previous:
            point = sample(current, self._previous[-1], self._previous[0])
            self.history.append(point)
            self._push(point, current["errors"])
        self._previous.append(current)

    async def refresh(self) -> None:
        """Ask what a snapshot cannot read without waiting: the number of rooms (from the
        broker) and the Redis round trip. Each sample does; so does each scrape."""
        try:
            self.room_count = len(await asyncio.wait_for(self.app.rooms.list(), 2))
        except Exception as exc:  # the broker's trouble shows in its own state and logs
            log.debug("could not count rooms: %s", exc)
        round_trip = getattr(self.app.broker, "round_trip", None)
        if round_trip is not None:
            try:
                self.redis_rtt = await asyncio.wait_for(round_trip(), 2)
            except Exception as exc:
                self.redis_rtt = None
                log.debug("could not time a Redis round trip: %s", exc)

    def _push(self, point: dict[str, Any], errors: list[dict[str, Any]]) -> None:
        frame = {"context": "admin", "event": "sample", "sample": point, "errors": errors}
        seen = set()
        for connection in self.watchers():
            seen.add(connection.id)
            if connection.id in self._greeted:
                connection.send(frame)
            else:
                self._greeted.add(connection.id)
                connection.send(self.hello())
        self._greeted &= seen


def sample(
    current: Mapping[str, Any], previous: Mapping[str, Any], window: Mapping[str, Any]
) -> dict[str, Any]:
    """One point of the admin page's charts: rates over the last second (``current`` minus
    ``previous``), per-action rates and quantiles over the window (``current`` minus
    ``window``, up to :data:`WINDOW` seconds back), and the gauges as they are now."""
    seconds = max(current["time"] - previous["time"], 1e-3)
    span = max(current["time"] - window["time"], 1e-3)
    counters, before = current["counters"], previous["counters"]

    def rate(key: str) -> float:
        return round((counters.get(key, 0) - before.get(key, 0)) / seconds, 2)

    actions: dict[str, Any] = {}
    all_buckets: list[int] | None = None
    done = errors = 0
    for name, entry in current["actions"].items():
        last = previous["actions"].get(name)
        done += sum(entry["outcomes"].values()) - (sum(last["outcomes"].values()) if last else 0)
        failed = _failures(entry) - (_failures(last) if last else 0)
        errors += failed
        base = window["actions"].get(name)
        buckets = _minus(entry["buckets"], base["buckets"] if base else None)
        calls = sum(entry["outcomes"].values()) - (sum(base["outcomes"].values()) if base else 0)
        if not calls:
            continue
        all_buckets = buckets if all_buckets is None else _plus(all_buckets, buckets)
        actions[name] = {
            "rate": round(calls / span, 2),
            "errors": round((_failures(entry) - (_failures(base) if base else 0)) / span, 2),
            "p50": _ms(quantile(0.5, buckets)),
            "p99": _ms(quantile(0.99, buckets)),
        }
    gauges = current["gauges"]
    return {
        "t": int(current["time"] * 1000),
        "processes": current["processes"],
        "connections": dict(current["connections"]),
        "rooms": gauges.get("rooms"),
        "memberships": gauges.get("memberships", 0),
        "topRooms": [[room, n] for room, n in current["rooms"].items()],
        "actionsPerSecond": round(done / seconds, 2),
        "errorsPerSecond": round(errors / seconds, 2),
        "p50": _ms(quantile(0.5, all_buckets)) if all_buckets else None,
        "p99": _ms(quantile(0.99, all_buckets)) if all_buckets else None,
        "actions": actions,
        "framesIn": rate("frames_in"),
        "framesOut": rate("frames_out"),
        "says": rate("says"),
        "deliveries": rate("deliveries"),
        "inFlight": gauges.get("in_flight", 0),
        "poolBusy": gauges.get("pool_busy", 0),
        "loopLagMs": _ms(gauges.get("loop_lag")),
        "redis": dict(current["redis"]),
        "redisRttMs": _ms(gauges.get("redis_rtt")),
        "errorsLogged": counters.get("errors_logged", 0),
    }


def _failures(entry: Mapping[str, Any]) -> int:
    return sum(n for outcome, n in entry["outcomes"].items() if outcome != "ok")


def _minus(now: list[int], then: list[int] | None) -> list[int]:
    return list(now) if then is None else [a - b for a, b in zip(now, then, strict=True)]


def _plus(a: list[int], b: list[int]) -> list[int]:
    return [x + y for x, y in zip(a, b, strict=True)]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
