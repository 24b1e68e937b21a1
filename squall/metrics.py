"""What a running server counts, kept cheap enough for the hot path, and read as snapshots.

Every count is a plain integer (or float) on a :class:`Stats` object the server already holds:
an action, a frame or a delivery costs an increment, never a lock or a call into a metrics
library. The exporters read the counts when asked: :meth:`Stats.snapshot` gathers them with
the server's gauges into one JSON-able dict, :func:`merge` adds up the snapshots of several
worker processes (``--workers N``) into the machine's, and ``squall.exposition`` turns that into
Prometheus text; the admin page charts the differences between two snapshots a second apart.

Action durations go into a fixed set of buckets per action (:data:`BUCKETS`), found with
``bisect``: the quantiles the admin page shows (:func:`quantile`) and the Prometheus histogram
are computed from the buckets, so no single duration is kept.

Presence and history (PROTOCOL.md §8-9) count next to ``says`` and ``deliveries``: presence
frames written to members, messages numbered and kept, and recoveries by outcome.
"""

from __future__ import annotations

import heapq
import os
import re
import resource
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from threading import Lock
from typing import Any

from .errors import ClientError

__all__ = [
    "BUCKETS",
    "CLOSE_CODES",
    "TOP_ROOMS",
    "UNKNOWN_ACTION",
    "ActionStats",
    "MeteredExecutor",
    "Stats",
    "merge",
    "outcome_of",
    "quantile",
    "rss_bytes",
    "top_rooms",
]

#: Upper bounds (seconds) of the action duration buckets; a last bucket holds what is slower.
#: Squall's actions take from tens of microseconds to seconds, hence the fine low end.
BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

#: How many rooms a snapshot names (by members here): label cardinality stays bounded.
TOP_ROOMS = 10

#: Close codes counted under a label of their own: RFC 6455's and Squall's (4000 destroyed,
#: 4001 refused). A client may close with any code from 3000 to 4999: those count as "other".
CLOSE_CODES = frozenset({*range(1000, 1016), 4000, 4001})

#: The ``action`` label of a request for an action that does not exist: a client chooses
#: that name, so it never becomes a label of its own.
UNKNOWN_ACTION = "(unknown)"

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def outcome_of(error: BaseException | None) -> str:
    """The ``outcome`` label of a finished action: ``ok``, the snake_case name of an expected
    error's class (``missing_param``, ``too_many_pending_actions``, ``forbidden``...), or
    ``internal`` for anything else (a bug, logged with its traceback)."""
    if error is None:
        return "ok"
    if isinstance(error, PermissionError):
        return "forbidden"
    if isinstance(error, ClientError):
        return _CAMEL.sub("_", type(error).__name__).lower()
    return "internal"


class ActionStats:
    """One action's counts: by outcome, and its durations by bucket."""

    __slots__ = ("buckets", "outcomes", "seconds")

    def __init__(self) -> None:
        self.outcomes: dict[str, int] = {}
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.seconds = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"outcomes": dict(self.outcomes), "buckets": list(self.buckets), "sum": self.seconds}


class Stats:
    """The counters of one server process. Components increment the attributes directly.

    Counters only grow; gauges (open connections, rooms, loop lag...) are not kept here but read
    from their owners by :meth:`snapshot`, through the ``live`` callable the monitor installs.
    """

    def __init__(self) -> None:
        self.socket_connects = 0
        self.socket_disconnects: dict[str, int] = {}  # close code -> sockets closed with it
        self.frames_in = 0
        self.frames_out = 0
        self.http_requests: dict[int, int] = {}  # status -> requests answered with it
        self.says = 0
        self.deliveries = 0
        self.presence_frames = 0
        self.history_stores = 0
        self.recoveries: dict[str, int] = {}  # "recovered" / "missed" -> roomAdd with since
        self.rate_limited = 0
        self.slow_readers = 0
        self.errors_logged = 0
        self.actions: dict[str, ActionStats] = {}
        self.started_at = time.time()
        #: The live state a snapshot adds (the monitor installs it): ``gauges`` (name -> number or
        #: None), ``connections`` (type -> open), ``rooms`` (room -> members here, the largest
        #: few), ``redis`` (the broker's state, None without Redis), ``errors`` (the last ones).
        self.live: Callable[[], dict[str, Any]] = _nothing_live

    # -- the hot path ----------------------------------------------------------------------------

    def action_done(self, name: str, error: BaseException | None, seconds: float | None) -> None:
        """Count one finished action. ``seconds`` is None for one refused before it ran (it
        counts by outcome but not in the durations)."""
        entry = self.actions.get(name)
        if entry is None:
            entry = self.actions[name] = ActionStats()
        outcome = "ok" if error is None else outcome_of(error)
        entry.outcomes[outcome] = entry.outcomes.get(outcome, 0) + 1
        if seconds is not None:
            entry.buckets[bisect_left(BUCKETS, seconds)] += 1
            entry.seconds += seconds

    def recovered(self, whole: bool) -> None:
        """Count one ``roomAdd`` with ``since``: ``recovered`` when it got every message it
        missed, else ``missed``."""
        key = "recovered" if whole else "missed"
        self.recoveries[key] = self.recoveries.get(key, 0) + 1

    def socket_closed(self, code: int) -> None:
        key = str(code) if code in CLOSE_CODES else "other"
        self.socket_disconnects[key] = self.socket_disconnects.get(key, 0) + 1

    def http_answered(self, status: int) -> None:
        self.http_requests[status] = self.http_requests.get(status, 0) + 1

    # -- reading -----------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Every count and gauge of this process now, as a JSON-able dict (see :func:`merge`)."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "pid": os.getpid(),
            "time": time.time(),
            "started": self.started_at,
            "counters": {
                "socket_connects": self.socket_connects,
                "frames_in": self.frames_in,
                "frames_out": self.frames_out,
                "says": self.says,
                "deliveries": self.deliveries,
                "presence_frames": self.presence_frames,
                "history_stores": self.history_stores,
                "rate_limited": self.rate_limited,
                "slow_readers": self.slow_readers,
                "errors_logged": self.errors_logged,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
            },
            "disconnects": dict(self.socket_disconnects),
            "recoveries": dict(self.recoveries),
            "http": {str(status): n for status, n in self.http_requests.items()},
            "actions": {name: entry.as_dict() for name, entry in self.actions.items()},
            **self.live(),
        }


def _nothing_live() -> dict[str, Any]:
    return {"gauges": {}, "connections": {}, "rooms": {}, "redis": None, "errors": []}


# -- the machine: snapshots of several processes added up ----------------------------------------

#: Gauges of several live processes that combine as the largest, not the sum: the loop lag, the
#: Redis round trip, and the cluster-wide room count that every worker sees alike.
_GAUGE_MAX = frozenset({"loop_lag", "rooms", "redis_rtt"})


def merge(live: Iterable[Mapping[str, Any]], retired: Iterable[Mapping[str, Any]] = ()) -> dict:
    """The machine's snapshot from its processes' ones (the same shape, plus ``processes``).

    Counters, per-code and per-action counts add up over every process that ever ran
    (``retired`` ones too, so a total never goes down when a worker is replaced); gauges come
    from the ``live`` processes only: summed (connections, memberships, busy threads), or the
    largest (:data:`_GAUGE_MAX`). Rooms add up their members and the :data:`TOP_ROOMS` largest
    are kept; Redis states are counted (how many processes are ``ok``, ``reconnecting``...);
    the last :data:`ERRORS_KEPT` errors of all are kept, oldest first.
    """
    live = list(live)
    merged: dict[str, Any] = {
        "processes": len(live),
        "time": max((s["time"] for s in live), default=time.time()),
        "started": min((s["started"] for s in live), default=time.time()),
        "counters": {},
        "disconnects": {},
        "recoveries": {},
        "http": {},
        "actions": {},
        "gauges": {},
        "connections": {},
        "rooms": {},
        "redis": {},
        "errors": [],
    }
    for snap in (*live, *retired):
        _add(merged["counters"], snap["counters"])
        _add(merged["disconnects"], snap["disconnects"])
        # (a worker of a release without recoveries may still share its last snapshot)
        _add(merged["recoveries"], snap.get("recoveries", {}))
        _add(merged["http"], snap["http"])
        for name, entry in snap["actions"].items():
            into = merged["actions"].setdefault(
                name, {"outcomes": {}, "buckets": [0] * (len(BUCKETS) + 1), "sum": 0.0}
            )
            _add(into["outcomes"], entry["outcomes"])
            into["buckets"] = [
                a + b for a, b in zip(into["buckets"], entry["buckets"], strict=True)
            ]
            into["sum"] += entry["sum"]
    gauges = merged["gauges"]
    for snap in live:
        for key, value in snap["gauges"].items():
            if value is None:
                gauges.setdefault(key, None)
            elif key in _GAUGE_MAX:
                current = gauges.get(key)
                gauges[key] = value if current is None else max(current, value)
            else:
                gauges[key] = (gauges.get(key) or 0) + value
        _add(merged["connections"], snap["connections"])
        _add(merged["rooms"], snap["rooms"])
        if snap["redis"] is not None:
            state = snap["redis"]
            merged["redis"][state] = merged["redis"].get(state, 0) + 1
        merged["errors"].extend(snap["errors"])
    merged["rooms"] = dict(top_rooms(merged["rooms"]))
    merged["errors"] = sorted(merged["errors"], key=lambda e: e["time"])[-ERRORS_KEPT:]
    return merged


#: How many of the last logged errors a snapshot carries (and the admin page lists).
ERRORS_KEPT = 20


def top_rooms(members: Mapping[str, int], limit: int = TOP_ROOMS) -> list[tuple[str, int]]:
    """The ``limit`` rooms with the most members, largest first (ties by name)."""
    return [(room, n) for n, room in heapq.nlargest(limit, ((n, r) for r, n in members.items()))]


def _add(into: dict[str, Any], values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        into[key] = into.get(key, 0) + value


def quantile(q: float, buckets: list[int]) -> float | None:
    """The ``q`` quantile (0..1) of durations counted in :data:`BUCKETS`, in seconds, by linear
    interpolation inside the bucket it falls in (as Prometheus' ``histogram_quantile``); None
    without observations. One in the last (unbounded) bucket reads as the last bound."""
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(buckets):
        if count and seen + count >= rank:
            if index == len(BUCKETS):
                return BUCKETS[-1]
            low = BUCKETS[index - 1] if index else 0.0
            return low + (BUCKETS[index] - low) * (rank - seen) / count
        seen += count
    return BUCKETS[-1]


class MeteredExecutor(ThreadPoolExecutor):
    """The thread pool of plain-function actions, counting how many of its threads are busy.

    The count moves in the pool's threads, under a lock of its own: the event loop never waits
    on it (it only reads ``busy``, an int). A call is busy from the moment a thread picks it up
    until it returns, even when the action's caller has stopped waiting (a timeout): that thread
    is still taken.
    """

    def __init__(
        self, thread_name_prefix: str = "squall-action", max_workers: int | None = None
    ) -> None:
        #: The most threads the pool starts (by default the standard library's, made explicit).
        self.size = max_workers or min(32, (os.cpu_count() or 1) + 4)
        super().__init__(max_workers=self.size, thread_name_prefix=thread_name_prefix)
        self.busy = 0
        self._lock = Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return super().submit(self._metered, fn, *args, **kwargs)

    def _metered(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.busy += 1
        try:
            return fn(*args, **kwargs)
        finally:
            with self._lock:
                self.busy -= 1


class _Statm:
    """``/proc/self/statm``, kept open: one ``pread`` per reading (1.4 µs), where opening,
    reading and closing it as a Python file costs ten times as much, for every ``status``
    call. A forked worker forgets the parent's (``/proc/self`` named the parent when it was
    opened) and opens its own."""

    def __init__(self) -> None:
        self._fd = -1
        self._lock = Lock()  # the monitor reads it from its thread too
        os.register_at_fork(after_in_child=self._forget)

    def resident_pages(self) -> int:
        if self._fd < 0:
            with self._lock:
                if self._fd < 0:
                    self._fd = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
        return int(os.pread(self._fd, 128, 0).split()[1])

    def _forget(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._lock = Lock()  # another thread of the parent may have held it at the fork


_statm = _Statm()
_PAGE_SIZE = resource.getpagesize()


def rss_bytes() -> int:
    """This process's resident memory now, in bytes (its peak where /proc is missing)."""
    try:
        return _statm.resident_pages() * _PAGE_SIZE
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
