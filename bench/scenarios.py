"""The WebSocket scenarios, measured from outside: client-side rates and latencies, server-side
CPU and RSS from /proc.

Each function drives a fresh LoadGenerator against one server and returns a flat dict of numbers
(plus error counts) so the runner can tabulate every server the same way. ``pids`` are the server's
processes; CPU and RSS are summed over them (an empty list skips server-side figures).
"""

from __future__ import annotations

import array
import asyncio
import os
import time
from typing import Any

from bench import procstat
from bench.limits import CONNECT_TIMEOUT_S, MAX_CONNECTIONS, MAX_DURATION_S, MAX_MESSAGES, clamp
from bench.loadgen import LoadGenerator, split
from bench.workers import Target
from bench.wsclient import connect as ws_connect

now = time.perf_counter
FANOUT_CAP_S = 60.0  # a fan-out run that has not delivered everything by then is cut off
WARM_CONNECTIONS = 20  # opened and closed before the RSS baseline of the connect scenario
FRAME_SIZE = 1 << 20  # the frame scenario's payload: 1 MiB
MAX_FRAMES = 1000


def percentile_ms(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of sorted seconds, in milliseconds."""
    if not values:
        return None
    i = min(len(values) - 1, max(0, round(pct / 100 * (len(values) - 1))))
    return values[i] * 1000


def merged(results: list[dict]) -> list[float]:
    """All workers' packed latencies, sorted."""
    out = array.array("d")
    for r in results:
        out.frombytes(r["lat"])
    return sorted(out)


def _open(gen: LoadGenerator, total: int, concurrency: int = 100) -> list[dict]:
    shares = [{"count": n} for n in split(total, gen.procs)]
    return gen.command("open", 180, shares, concurrency=concurrency)


def _open_errors(opened: list[dict]) -> dict[str, Any]:
    return {
        "connect_errors": sum(r["errors"] for r in opened),
        "connect_error_sample": [e for r in opened for e in r["error_sample"]][:3],
    }


def rpc(
    target: Target,
    pids: list[int],
    connections: int = 50,
    duration: float = 10.0,
    action: str = "randomNumber",
    procs: int = 1,
) -> dict[str, Any]:
    """Sequential action round trips on every connection, counted for ``duration`` s."""
    connections = int(clamp(connections, 1, MAX_CONNECTIONS))
    duration = clamp(duration, 0.5, MAX_DURATION_S)
    with LoadGenerator(target, procs) as gen:
        opened = _open(gen, connections, concurrency=50)
        t_start = now() + 1.5
        t_end = t_start + duration
        gen.send("rpc", action=action, t_start=t_start, t_end=t_end, drain=3.0)
        time.sleep(max(0.0, t_start - now()))
        cpu0 = procstat.cpu_seconds(pids)
        time.sleep(max(0.0, t_end - now()))
        cpu1 = procstat.cpu_seconds(pids)
        results = gen.collect("rpc", 15)
    lat = merged(results)
    n = len(lat)
    return {
        "connected": sum(r["opened"] for r in opened),
        "round_trips": n,
        "rt_per_s": n / duration,
        "p50_ms": percentile_ms(lat, 50),
        "p99_ms": percentile_ms(lat, 99),
        "cpu_us_per_rt": 1e6 * (cpu1 - cpu0) / n if n and pids else None,
        "server_cpu_pct": 100 * (cpu1 - cpu0) / duration if pids else None,
        "gen_cpu_pct": 100 * sum(r["gen_cpu"] for r in results) / duration,
        "errors": sum(r["errors"] for r in results),
        "lost": sum(r["lost"] + r["stuck"] for r in results),
        **_open_errors(opened),
    }


def fanout(
    target: Target,
    pids: list[int],
    members: int = 200,
    messages: int = 200,
    window: int = 1,
    procs: int = 1,
) -> dict[str, Any]:
    """One sender says ``messages`` times into a room of ``members`` receivers (+ itself).

    ``procs`` processes hold the members; the sender has one more process to itself.
    The room is created first with the createChatRoom action (ActionHero needs it). Deliveries are
    counted at the receivers only, so every server is credited with members x messages.
    """
    members = int(clamp(members, 1, MAX_CONNECTIONS))
    messages = int(clamp(messages, 1, MAX_MESSAGES))
    room = f"bench{members}"
    # worker 0 holds only the sender: in a process of its own, its next say never waits behind
    # the parsing of a whole room's deliveries
    with LoadGenerator(target, procs + 1) as gen:
        shares = [{"count": 0}] + [{"count": n} for n in split(members, gen.procs - 1)]
        opened = gen.command("open", 180, shares, concurrency=100)
        setup = gen.command("room", 30, room=room)[0]
        if setup.get("join_error"):
            raise RuntimeError(f"sender could not join {room}: {setup['join_error']}")
        joined = gen.command("join", 120, room=room, concurrency=200)
        t_start = now() + 0.3
        gen.send(
            "fanout",
            messages=messages,
            window=window,
            t_start=t_start,
            deadline=t_start + FANOUT_CAP_S,
            room=room,
        )
        time.sleep(max(0.0, t_start - now()))
        cpu0 = procstat.cpu_seconds(pids)
        results = gen.collect("fanout", FANOUT_CAP_S + 10)
        cpu1 = procstat.cpu_seconds(pids)
    lat = merged(results)
    delivered = len(lat)
    head = results[0]
    members_in = sum(r["joined"] for r in joined)
    elapsed = max(r["last"] for r in results) - head["first"]
    return {
        "members": members_in,
        "delivered": delivered,
        "missing": members_in * messages - delivered,
        "deliveries_per_s": delivered / elapsed if delivered and elapsed > 0 else None,
        "p50_ms": percentile_ms(lat, 50),
        "p99_ms": percentile_ms(lat, 99),
        "cpu_us_per_delivery": 1e6 * (cpu1 - cpu0) / delivered if delivered and pids else None,
        "server_cpu_pct": 100 * (cpu1 - cpu0) / elapsed if pids and elapsed > 0 else None,
        "gen_cpu_pct": 100 * sum(r["gen_cpu"] for r in results) / elapsed if elapsed > 0 else None,
        "say_errors": head["say_errors"],
        "acked": head["acked"],
        "join_errors": sum(r["errors"] for r in joined),
        "join_error_sample": [e for r in joined for e in r["error_sample"]][:3],
        "bad_frames": sum(r["bad"] for r in results),
        **_open_errors(opened),
    }


def connect(
    target: Target,
    pids: list[int],
    stages: tuple[int, ...] = (2000, 10000),
    idle_s: float = 0.0,
    procs: int = 1,
    settle_s: float = 1.0,
) -> dict[str, Any]:
    """Open idle connections in growing ``stages`` (totals), reading RSS after each; then, when
    ``idle_s`` > 0, hold the last stage that long and read the server's CPU over it.

    Run this first on a freshly started server: RSS does not shrink after connections close, so
    the baseline must be a process that has served nothing but a short warm-up. Keys are
    suffixed with the stage, e.g. ``@2000``.
    """
    out: dict[str, Any] = {}
    with LoadGenerator(target, 1) as warm:  # first-use allocations are not per-connection costs
        _open(warm, WARM_CONNECTIONS)
    time.sleep(settle_s)
    rss0 = procstat.rss_kib(pids)
    with LoadGenerator(target, procs) as gen:
        for stage in stages:
            stage = int(clamp(stage, 1, MAX_CONNECTIONS))
            cpu0 = procstat.cpu_seconds(pids)
            opened = _open(gen, stage)
            cpu1 = procstat.cpu_seconds(pids)
            time.sleep(settle_s)
            alive = sum(r["alive"] for r in gen.command("status", 30))
            new = sum(r["opened"] for r in opened)
            elapsed = max(r["elapsed"] for r in opened)
            lat = merged(opened)
            out.update(
                {
                    f"alive@{stage}": alive,
                    f"connects_per_s@{stage}": new / elapsed if new and elapsed > 0 else None,
                    f"connect_p99_ms@{stage}": percentile_ms(lat, 99),
                    f"cpu_us_per_connect@{stage}": 1e6 * (cpu1 - cpu0) / new
                    if new and pids
                    else None,
                    f"rss_kib_per_conn@{stage}": (procstat.rss_kib(pids) - rss0) / alive
                    if alive and pids
                    else None,
                    f"connect_errors@{stage}": sum(r["errors"] for r in opened),
                }
            )
            errors = _open_errors(opened)["connect_error_sample"]
            if errors:
                out[f"connect_error_sample@{stage}"] = errors
        if idle_s > 0:
            idle_s = clamp(idle_s, 1, MAX_DURATION_S)
            before = gen.command("status", 30)
            cpu0 = procstat.cpu_seconds(pids)
            time.sleep(idle_s)
            cpu1 = procstat.cpu_seconds(pids)
            after = gen.command("status", 30)
            out.update(
                {
                    "idle_cpu_pct": 100 * (cpu1 - cpu0) / idle_s if pids else None,
                    "idle_alive": sum(r["alive"] for r in after),
                    "idle_pings_answered": sum(r["pings"] for r in after)
                    - sum(r["pings"] for r in before),
                }
            )
    return out


def frame(target: Target, pids: list[int], count: int = 200, size: int = FRAME_SIZE) -> dict:
    """``count`` binary frames of ``size`` random bytes, one at a time, each masked with its own
    random key; the server answers each with an error push (PROTOCOL.md: binary frames are not
    verbs), so what it spends per frame is reading, unmasking and refusing it: the frame layer.

    The event loop is one thread: its CPU time per frame is the loop time the frame takes from
    every other socket.
    """
    count = int(clamp(count, 1, MAX_FRAMES))
    return asyncio.run(_frames(target, pids, count, size))


async def _frames(target: Target, pids: list[int], count: int, size: int) -> dict[str, Any]:
    client = await ws_connect(
        target.host, target.ports[0], target.path, target.dialect, CONNECT_TIMEOUT_S
    )
    replies: asyncio.Queue[bytes] = asyncio.Queue()
    client.on_frame = replies.put_nowait
    payload = os.urandom(size)
    lat: list[float] = []
    try:
        for n in range(count + 5):  # 5 to warm up
            if n == 5:
                cpu0 = procstat.cpu_seconds(pids)
            t0 = now()
            client.send_binary(payload)
            reply = await asyncio.wait_for(replies.get(), CONNECT_TIMEOUT_S)
            if b'"error"' not in reply:
                raise RuntimeError(f"a binary frame was answered with {reply[:120]!r}")
            if n >= 5:
                lat.append(now() - t0)
        cpu1 = procstat.cpu_seconds(pids)
    finally:
        client.close()
    lat.sort()
    return {
        "frames": count,
        "frame_bytes": size,
        "cpu_ms_per_frame": 1e3 * (cpu1 - cpu0) / count if pids else None,
        "p50_ms": percentile_ms(lat, 50),
        "p99_ms": percentile_ms(lat, 99),
    }
