"""Prometheus text for ``/metrics``, with prometheus-client (the optional ``metrics`` extra).

:class:`SquallCollector` is a prometheus-client custom collector: at scrape time it reads one
snapshot of the machine (``squall.monitor.Monitor.machine``: this process's counts, fresh, plus
the other workers' under ``--workers N``) and yields metric families from it. Nothing here runs
between scrapes, and nothing on the hot path calls prometheus-client.

Why not prometheus-client's own multiprocess mode (mmap files per metric): it cannot remove a
label (a room that empties would be exported for the rest of the worker's life), it has no way
to add counts to a histogram other than one ``observe()`` per action, and the admin page needs
the same machine-wide numbers anyway. So each worker shares one snapshot a second
(``squall.monitor.SharedSnapshots``) and any worker answers for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString

from .metrics import BUCKETS

__all__ = ["REDIS_STATES", "MetricsExporter", "SquallCollector"]

#: Every state the Redis broker reports; each is exported, 0 when no process is in it.
REDIS_STATES = ("connecting", "ok", "reconnecting", "deaf", "stopped")

_COUNTERS = (
    ("socket_connects", "squall_socket_connects", "WebSocket connections opened."),
    ("frames_in", "squall_socket_frames_received", "WebSocket messages received from clients."),
    ("frames_out", "squall_socket_frames_sent", "WebSocket messages sent to clients."),
    ("says", "squall_says", "Room messages said (by clients and by server code)."),
    ("deliveries", "squall_deliveries", "Room messages written to members' sockets."),
    (
        "presence_frames",
        "squall_presence_frames",
        "Presence frames (a member joined or left) written to members' sockets.",
    ),
    (
        "history_stores",
        "squall_history_stores",
        "Room messages numbered and kept in a room's history.",
    ),
    ("rate_limited", "squall_rate_limited_frames", "Inbound frames over the rate limit."),
    (
        "slow_readers",
        "squall_slow_readers_dropped",
        "Sockets closed with 1008 because they stopped reading (maxBufferedBytes).",
    ),
    ("errors_logged", "squall_errors_logged", "Log records at ERROR or above."),
    ("cpu_seconds", "process_cpu_seconds", "User and system CPU time spent, in seconds."),
)

_GAUGES = (
    ("in_flight", "squall_actions_in_flight", "Actions running now."),
    ("pool_busy", "squall_action_pool_threads_busy", "Threads running plain-function actions."),
    ("pool_size", "squall_action_pool_threads", "Threads the plain-function action pool may use."),
    ("rooms", "squall_rooms", "Rooms that exist (in the whole cluster, with Redis)."),
    ("memberships", "squall_room_memberships", "Room memberships of the connections here."),
    (
        "loop_lag",
        "squall_event_loop_lag_seconds",
        "How late the event loop ran its timers over the last second (the worst process).",
    ),
    ("rss_bytes", "process_resident_memory_bytes", "Resident memory size, in bytes."),
)


class SquallCollector:
    """Yields every Squall metric from the snapshot ``read()`` returns (see module docstring)."""

    def __init__(self, read: Callable[[], Mapping[str, Any]]) -> None:
        self.read = read

    def describe(self) -> list[Metric]:
        return []  # registering must not take a snapshot; names are checked by the tests

    def collect(self) -> Iterator[Metric]:
        snap = self.read()
        counters = snap["counters"]
        for key, name, documentation in _COUNTERS:
            yield CounterMetricFamily(name, documentation, value=counters.get(key, 0))
        yield _labelled(
            CounterMetricFamily(
                "squall_socket_disconnects",
                "WebSocket connections closed, by close code (1006: dropped without one; "
                "other: a code of the client's own choosing).",
                labels=["code"],
            ),
            snap["disconnects"],
        )
        yield _labelled(
            CounterMetricFamily(
                "squall_http_requests", "HTTP requests answered, by status.", labels=["code"]
            ),
            snap["http"],
        )
        yield _labelled(
            CounterMetricFamily(
                "squall_recoveries",
                "roomAdd with since, by outcome (recovered: every missed message was kept; "
                "missed: some were not).",
                labels=["outcome"],
            ),
            {"recovered": 0, "missed": 0, **snap["recoveries"]},
        )
        yield from _actions(snap["actions"])

        gauges = snap["gauges"]
        for key, name, documentation in _GAUGES:
            if gauges.get(key) is not None:
                yield GaugeMetricFamily(name, documentation, value=gauges[key])
        yield GaugeMetricFamily(
            "process_start_time_seconds",
            "Start time of the oldest live process, in seconds since the epoch.",
            value=snap["started"],
        )
        yield GaugeMetricFamily(
            "squall_processes", "Server processes answering for this machine.", snap["processes"]
        )
        yield _labelled(
            GaugeMetricFamily("squall_connections", "Open connections, by type.", labels=["type"]),
            snap["connections"],
        )
        yield _labelled(
            GaugeMetricFamily(
                "squall_room_members",
                "Members here of the rooms with the most of them (the top few only).",
                labels=["room"],
            ),
            snap["rooms"],
        )
        if snap["redis"]:
            states = GaugeMetricFamily(
                "squall_redis_state",
                "Processes whose link to Redis is in each state.",
                labels=["state"],
            )
            for state in sorted({*REDIS_STATES, *snap["redis"]}):
                states.add_metric([state], snap["redis"].get(state, 0))
            yield states
            if gauges.get("redis_rtt") is not None:
                yield GaugeMetricFamily(
                    "squall_redis_round_trip_seconds",
                    "Time of a PING to Redis and back (the slowest process).",
                    value=gauges["redis_rtt"],
                )


def _labelled(family: Any, values: Mapping[str, float]) -> Any:
    for label, value in sorted(values.items()):
        family.add_metric([label], value)
    return family


def _actions(actions: Mapping[str, Mapping[str, Any]]) -> Iterator[Metric]:
    counts = CounterMetricFamily(
        "squall_actions",
        "Actions finished, by action and outcome (ok, or the error's kind).",
        labels=["action", "outcome"],
    )
    durations = HistogramMetricFamily(
        "squall_action_duration_seconds",
        "Time actions took to run, middleware included, by action.",
        labels=["action"],
    )
    bounds = [floatToGoString(b) for b in BUCKETS] + ["+Inf"]
    for name, entry in sorted(actions.items()):
        for outcome, value in sorted(entry["outcomes"].items()):
            counts.add_metric([name, outcome], value)
        cumulative, running = [], 0
        for bound, count in zip(bounds, entry["buckets"], strict=True):
            running += count
            cumulative.append((bound, running))
        if running:
            durations.add_metric([name], cumulative, sum_value=entry["sum"])
    yield counts
    yield durations


class MetricsExporter:
    """What the ``/metrics`` handler calls: the page for one scrape, in the format asked for."""

    def __init__(self, read: Callable[[], Mapping[str, Any]]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SquallCollector(read))

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The body and its ``Content-Type``: Prometheus text, or OpenMetrics when asked."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
