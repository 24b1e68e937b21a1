"""Counting without sockets: the stats the core keeps, how snapshots of several processes add
up, the samples of the admin page and the Prometheus text made from them."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from testkit import TIMEOUT

from squall.errors import ActionTimeout, MissingParam, TooManyPendingActions, UnknownAction
from squall.exposition import MetricsExporter
from squall.metrics import (
    BUCKETS,
    UNKNOWN_ACTION,
    MeteredExecutor,
    Stats,
    merge,
    outcome_of,
    quantile,
)
from squall.monitor import Monitor, SharedSnapshots, sample

from .conftest import declared, feed


def metrics_of(snapshot: dict) -> dict[tuple[str, tuple], float]:
    """Prometheus text of ``snapshot``, parsed back by prometheus-client's own parser:
    ``{(sample name, sorted labels): value}``."""
    body, content_type = MetricsExporter(lambda: snapshot).render(None)
    assert content_type.startswith("text/plain; version=0.0.4")
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def process(**overrides) -> dict:
    """A snapshot of one process, as ``Stats.snapshot`` makes it."""
    stats = Stats()
    snap = stats.snapshot()
    for key, value in overrides.items():
        snap[key] = value
    return snap


# -- outcomes and buckets ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (None, "ok"),
        (MissingParam("a"), "missing_param"),
        (UnknownAction(), "unknown_action"),
        (TooManyPendingActions(), "too_many_pending_actions"),
        (ActionTimeout(10), "action_timeout"),
        (PermissionError("no"), "forbidden"),
        (ValueError("bug"), "internal"),
    ],
)
def test_outcome_names_the_error_kind(error, outcome):
    assert outcome_of(error) == outcome


def test_action_done_counts_outcomes_and_buckets_durations():
    stats = Stats()
    stats.action_done("add", None, 0.0003)
    stats.action_done("add", None, 0.004)
    stats.action_done("add", MissingParam("a"), 0.0001)
    stats.action_done("add", TooManyPendingActions(), None)  # refused: no duration

    entry = stats.actions["add"]
    assert entry.outcomes == {"ok": 2, "missing_param": 1, "too_many_pending_actions": 1}
    assert sum(entry.buckets) == 3
    assert entry.buckets[0] == 2  # <= 0.5 ms
    assert entry.buckets[BUCKETS.index(0.005)] == 1
    assert entry.seconds == pytest.approx(0.0044)


def test_close_codes_a_client_chooses_share_one_label():
    stats = Stats()
    for code in (1000, 1008, 4000, 3001, 4999, 4321, 1006):
        stats.socket_closed(code)
    assert stats.snapshot()["disconnects"] == {
        "1000": 1,
        "1008": 1,
        "4000": 1,
        "1006": 1,
        "other": 3,
    }


def test_quantile_interpolates_inside_the_bucket():
    buckets = [0] * (len(BUCKETS) + 1)
    assert quantile(0.5, buckets) is None
    buckets[1] = 10  # ten durations between 0.5 and 1 ms
    assert quantile(0.5, buckets) == pytest.approx(0.00075)
    assert quantile(0.99, buckets) == pytest.approx(0.000995)
    buckets[-1] = 1000  # slower than the last bound
    assert quantile(0.99, buckets) == BUCKETS[-1]


def test_metered_executor_counts_busy_threads():
    pool = MeteredExecutor()
    running, release = threading.Event(), threading.Event()

    def blocking():
        running.set()
        release.wait(TIMEOUT)
        return "done"

    try:
        future = pool.submit(blocking)
        assert running.wait(TIMEOUT)
        assert pool.busy == 1
        release.set()
        assert future.result(TIMEOUT) == "done"
        assert pool.busy == 0
        assert pool.size == min(32, (os.cpu_count() or 1) + 4)
    finally:
        release.set()
        pool.shutdown(wait=True)


# -- counting in the core --------------------------------------------------------------------------


async def test_every_action_counts_once_with_its_outcome(make_core):
    async def hello(data):
        return {"hi": 1}

    core = await make_core(actions=[declared(hello)])
    stats = core.processor.stats
    connection = core.connect()
    for _ in range(7):
        await feed(core.protocol, connection, {"event": "action", "params": {"action": "hello"}})
    await feed(core.protocol, connection, {"event": "action", "params": {"action": "nope"}})

    assert stats.actions["hello"].outcomes == {"ok": 7}
    assert sum(stats.actions["hello"].buckets) == 7
    assert stats.actions[UNKNOWN_ACTION].outcomes == {"unknown_action": 1}
    assert "nope" not in stats.actions  # a client's name never becomes a label


async def test_an_action_that_raises_counts_as_internal(make_core, caplog):
    async def broken(data):
        raise RuntimeError("bug")

    core = await make_core(actions=[declared(broken)])
    connection = core.connect()
    await feed(core.protocol, connection, {"event": "action", "params": {"action": "broken"}})
    assert core.processor.stats.actions["broken"].outcomes == {"internal": 1}


async def test_says_and_deliveries_are_counted(make_core):
    core = await make_core()
    stats = core.rooms.stats
    members = [core.connect() for _ in range(3)]
    for member in members:
        await feed(core.protocol, member, {"event": "roomAdd", "room": "defaultRoom"})
    await feed(core.protocol, members[0], {"event": "say", "room": "defaultRoom", "message": "hi"})
    await core.rooms.broadcast("defaultRoom", "from the server")

    assert stats.says == 2
    assert stats.deliveries == 6


async def test_frames_over_the_rate_limit_are_counted(make_core):
    core = await make_core(rate_limit=0.001, rate_burst=2)
    connection = core.connect()
    for _ in range(5):
        await feed(core.protocol, connection, {"event": "ping"})
    assert core.protocol.stats.rate_limited == 3


# -- the machine from its processes ----------------------------------------------------------------


def test_merge_adds_counters_of_every_process_and_gauges_of_live_ones():
    a = process(
        counters={"frames_in": 5, "says": 1},
        disconnects={"1000": 2},
        actions={"add": {"outcomes": {"ok": 3}, "buckets": [3] + [0] * len(BUCKETS), "sum": 0.1}},
        gauges={"memberships": 4, "loop_lag": 0.01, "rooms": 7},
        connections={"webSocket": 3, "web": 1},
        rooms={"lobby": 3, "a": 1},
        redis="ok",
        errors=[{"time": 2.0, "message": "b"}],
    )
    b = process(
        counters={"frames_in": 1},
        disconnects={"1000": 1, "1006": 1},
        actions={
            "add": {
                "outcomes": {"ok": 1, "internal": 1},
                "buckets": [0, 2] + [0] * (len(BUCKETS) - 1),
                "sum": 0.2,
            }
        },
        gauges={"memberships": 2, "loop_lag": 0.03, "rooms": 7},
        connections={"webSocket": 2},
        rooms={"lobby": 2, "b": 4},
        redis="reconnecting",
        errors=[{"time": 1.0, "message": "a"}],
    )
    dead = process(
        counters={"frames_in": 100},
        gauges={"memberships": 50},
        connections={"webSocket": 50},
        rooms={"gone": 50},
        redis="ok",
    )

    machine = merge([a, b], [dead])

    assert machine["processes"] == 2
    assert machine["counters"]["frames_in"] == 106
    assert machine["disconnects"] == {"1000": 3, "1006": 1}
    assert machine["actions"]["add"]["outcomes"] == {"ok": 4, "internal": 1}
    assert machine["actions"]["add"]["buckets"][:2] == [3, 2]
    assert machine["gauges"]["memberships"] == 6  # summed, the dead process left out
    assert machine["gauges"]["loop_lag"] == 0.03  # the worst
    assert machine["gauges"]["rooms"] == 7  # every worker sees the cluster's rooms: not summed
    assert machine["connections"] == {"webSocket": 5, "web": 1}
    assert machine["rooms"] == {"lobby": 5, "b": 4, "a": 1}
    assert machine["redis"] == {"ok": 1, "reconnecting": 1}
    assert [e["message"] for e in machine["errors"]] == ["a", "b"]


def test_top_rooms_keep_only_the_largest():
    many = process(rooms={f"room{i:02}": i for i in range(40)})
    assert list(merge([many])["rooms"]) == [f"room{i:02}" for i in range(39, 29, -1)]


def test_shared_snapshots_tell_live_from_retired(tmp_path: Path):
    mine = SharedSnapshots(tmp_path)
    mine.write(process(counters={"says": 1}))
    other_pid = os.getppid()
    (tmp_path / f"worker-{other_pid}.json").write_text(
        json.dumps(process(pid=other_pid, counters={"says": 2}))
    )
    gone = 2**22 + 1  # above pid_max's default: no such process
    (tmp_path / f"worker-{gone}.json").write_text(
        json.dumps(process(pid=gone, counters={"says": 4}))
    )
    (tmp_path / "retired-7-1.json").write_text(json.dumps(process(pid=7, counters={"says": 8})))
    (tmp_path / "worker-9.tmp").write_text("{half a")  # being written: not read

    live, retired = mine.others()

    assert [s["counters"]["says"] for s in live] == [2]
    assert sorted(s["counters"]["says"] for s in retired) == [4, 8]
    mine.retire()
    assert not mine.path.exists()
    assert len(list(tmp_path.glob(f"retired-{os.getpid()}-*.json"))) == 1


def test_a_sample_has_rates_and_window_quantiles():
    buckets = [0] * (len(BUCKETS) + 1)
    window = merge([process(time=100.0)])
    previous = merge(
        [process(time=109.0, counters={"frames_in": 10, "frames_out": 20}, actions={})]
    )
    buckets[1] = 20
    current = merge(
        [
            process(
                time=110.0,
                counters={"frames_in": 30, "frames_out": 20, "errors_logged": 1},
                actions={
                    "add": {
                        "outcomes": {"ok": 19, "missing_param": 1},
                        "buckets": buckets,
                        "sum": 0.02,
                    }
                },
                connections={"webSocket": 2, "web": 0},
            )
        ]
    )

    point = sample(current, previous, window)

    assert point["t"] == 110_000
    assert point["framesIn"] == 20.0 and point["framesOut"] == 0.0
    assert point["actionsPerSecond"] == 20.0 and point["errorsPerSecond"] == 1.0
    assert point["actions"]["add"]["rate"] == 2.0  # 20 over the 10 s window
    assert point["actions"]["add"]["errors"] == 0.1
    assert point["actions"]["add"]["p50"] == pytest.approx(0.75)
    assert point["connections"] == {"webSocket": 2, "web": 0}
    assert point["errorsLogged"] == 1


# -- the Prometheus text ---------------------------------------------------------------------------


def test_exposition_parses_with_prometheus_client():
    buckets = [0] * (len(BUCKETS) + 1)
    buckets[0], buckets[-1] = 2, 1
    snap = merge(
        [
            process(
                counters={"socket_connects": 3, "frames_in": 9, "slow_readers": 1},
                disconnects={"1008": 1},
                http={"200": 4},
                actions={"add": {"outcomes": {"ok": 3}, "buckets": buckets, "sum": 40.0}},
                gauges={"rooms": 2, "loop_lag": 0.002, "redis_rtt": 0.0005},
                connections={"webSocket": 2, "web": 0},
                rooms={"lobby": 2},
                redis="ok",
            )
        ]
    )
    found = metrics_of(snap)

    assert found[("squall_socket_connects_total", ())] == 3
    assert found[("squall_socket_disconnects_total", (("code", "1008"),))] == 1
    assert found[("squall_slow_readers_dropped_total", ())] == 1
    assert found[("squall_http_requests_total", (("code", "200"),))] == 4
    assert found[("squall_actions_total", (("action", "add"), ("outcome", "ok")))] == 3
    assert (
        found[("squall_action_duration_seconds_bucket", (("action", "add"), ("le", "0.0005")))] == 2
    )
    assert (
        found[("squall_action_duration_seconds_bucket", (("action", "add"), ("le", "30.0")))] == 2
    )
    assert (
        found[("squall_action_duration_seconds_bucket", (("action", "add"), ("le", "+Inf")))] == 3
    )
    assert found[("squall_action_duration_seconds_count", (("action", "add"),))] == 3
    assert found[("squall_connections", (("type", "webSocket"),))] == 2
    assert found[("squall_room_members", (("room", "lobby"),))] == 2
    assert found[("squall_rooms", ())] == 2
    assert found[("squall_redis_state", (("state", "ok"),))] == 1
    assert found[("squall_redis_state", (("state", "reconnecting"),))] == 0
    assert found[("squall_redis_round_trip_seconds", ())] == 0.0005
    assert found[("squall_event_loop_lag_seconds", ())] == 0.002
    assert found[("squall_processes", ())] == 1


def test_presence_and_history_counters_add_up_and_are_exported():
    first = process(
        counters={"presence_frames": 4, "history_stores": 2}, recoveries={"recovered": 1}
    )
    second = process(counters={"presence_frames": 1}, recoveries={"recovered": 2, "missed": 1})

    machine = merge([first, second])
    found = metrics_of(machine)

    assert machine["recoveries"] == {"recovered": 3, "missed": 1}
    assert found[("squall_presence_frames_total", ())] == 5
    assert found[("squall_history_stores_total", ())] == 2
    assert found[("squall_recoveries_total", (("outcome", "recovered"),))] == 3
    assert found[("squall_recoveries_total", (("outcome", "missed"),))] == 1


def test_recoveries_are_exported_before_the_first_one():
    found = metrics_of(merge([process()]))

    assert found[("squall_recoveries_total", (("outcome", "recovered"),))] == 0
    assert found[("squall_recoveries_total", (("outcome", "missed"),))] == 0


def test_without_redis_no_redis_metrics():
    found = metrics_of(merge([process()]))
    assert not [name for name, _ in found if "redis" in name]


def test_openmetrics_when_asked():
    body, content_type = MetricsExporter(lambda: merge([process()])).render(
        "application/openmetrics-text; version=1.0.0"
    )
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


# -- the monitor in a whole app --------------------------------------------------------------------


async def test_the_monitor_samples_a_running_app(make_app):
    app = await make_app(
        files={"actions/hello.py": HELLO_ACTION},
        extra_yaml="servers:\n  web:\n    metrics:\n      enabled: true\n",
    )
    await app.monitor.tick()
    await app.processor.process(_http(), {"action": "hello"})
    await app.monitor.tick()

    assert app.monitor.history[-1]["actions"]["hello"]["rate"] > 0
    machine = app.monitor.machine()
    assert machine["actions"]["hello"]["outcomes"] == {"ok": 1}
    assert machine["gauges"]["rooms"] == 1  # defaultRoom, counted through the broker
    assert machine["gauges"]["pool_size"] == app.executor.size
    assert time.time() - machine["time"] < 5


async def test_a_scrape_shares_what_it_shows_before_showing_it(make_app, tmp_path):
    """With ``--workers``, what a scrape of one worker counts is in the shared folder before the
    scrape gets it: if that worker is killed right after, the others still count it (a total
    Prometheus has seen never goes down), whenever its last once-a-second write was."""
    app = await make_app(
        files={"actions/hello.py": HELLO_ACTION},
        extra_yaml="servers:\n  web:\n    metrics:\n      enabled: true\n",
    )
    shared = SharedSnapshots(tmp_path / "shared")
    shared.directory.mkdir()
    monitor = Monitor(app, shared)
    await monitor.tick()  # its once-a-second write, before the action
    await app.processor.process(_http(), {"action": "hello"})

    shown = monitor.machine()

    left_for_the_others = json.loads(shared.path.read_text())
    assert shown["actions"]["hello"]["outcomes"] == {"ok": 1}
    assert left_for_the_others["actions"]["hello"]["outcomes"] == {"ok": 1}


HELLO_ACTION = """
    from squall import action

    @action()
    async def hello(data):
        return {}
"""


def _http():
    from squall.connections import Connection

    return Connection("web", "127.0.0.1", 1)
