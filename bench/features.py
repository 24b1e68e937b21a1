"""Presence and history (issue 15), each measured beside the same run's figure without it.

Every scenario starts its own Squall (and, for the Redis variants, a throw-away redis-server)
whose ``startingChatRooms`` hold a plain room and rooms with history or presence, so the feature
on and off are measured in the same process, minutes apart:

- ``history``: one client says in a room of :data:`LISTENERS` members, one say in flight,
  alternately in a plain room and in a room with history; server CPU per say, both ways, and
  their ratio (issue 15: at most 1.5), in memory and through Redis (Squall's processes only; the
  redis-server's CPU is reported beside it);
- ``presence``: a room of 2 000 members with presence; one more client joins and leaves
  repeatedly. Frames the members receive per change (one each), server CPU per presence frame
  beside the CPU per delivery of a say in the same room, and (in process, no socket) how many
  times a join or leave is JSON-encoded: once, whatever the room's size;
- ``recovery``: a client that missed 100 messages joins with ``since``: the reply's round trip
  (issue 15: within 10 ms on one server) and, through Redis, the Redis commands a recovery costs
  (``INFO commandstats``: one ``EVALSHA``, the whole read).

Clients are ``bench.wsclient``'s (masked frames, a browser's upgrade headers), in this process:
the load is sequential, so the generator never competes with the server for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import procstat, servers
from bench.cluster import redis_server
from bench.limits import CONNECT_TIMEOUT_S, MAX_CONNECTIONS, clamp
from bench.scenarios import percentile_ms
from bench.wsclient import WSClient, connect, dumps, loads

now = time.perf_counter

#: The rooms every features server starts with.
ROOMS = {
    "plain": {},
    "kept": {"history": {"size": 100, "ttl": 600_000}},
    "crowd": {"presence": True},
}
LISTENERS = 20  # members of the history scenario's rooms, besides the sender
PRESENCE_PREFIX = b'{"context":"presence"'
SETTLE_S = 120.0  # at most this long for every member to have every frame


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is; ``--quick`` trades precision for time."""

    says: int  # per room and round, history scenario
    rounds: int
    crowd: int  # members of the presence room
    changes: int  # joins and leaves, each, of the presence probe
    missed: int  # messages a recovering client missed
    recoveries: int


FULL = Sizes(says=2000, rounds=3, crowd=2000, changes=20, missed=100, recoveries=100)
QUICK = Sizes(says=500, rounds=2, crowd=2000, changes=10, missed=100, recoveries=30)


def config(run_dir: Path, base: Path) -> Path:
    """The bench's Squall override plus :data:`ROOMS` (JSON is YAML), and a lease long enough
    that no lease renewal (whose reaping is an ``EVALSHA`` too) falls in a measurement."""
    merged = json.loads(base.read_text())
    merged["general"]["startingChatRooms"] = ROOMS
    merged["redis"] = {"leaseTimeout": 600_000}
    path = run_dir / "squall-features.yaml"
    path.write_text(json.dumps(merged, indent=2))
    return path


@contextmanager
def squall(run_dir: Path, base: Path, redis: bool) -> Iterator[tuple[servers.Server, str | None]]:
    """A fresh Squall with :data:`ROOMS`, alone or on a fresh Redis (its URL, else None)."""
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(redis_server(run_dir)) if redis else None
        env = {"SQUALL_REDIS_URL": url} if url else {}
        server = servers.start_squall(servers.free_port(), run_dir, config(run_dir, base), env)
        stack.callback(server.stop)
        yield server, url


# -- clients ---------------------------------------------------------------------------------------


class Client:
    """One connection with a running messageId and counters of what it was pushed."""

    def __init__(self, ws: WSClient) -> None:
        self.ws = ws
        self.said = 0
        self.presence = 0
        self.message_id = 0
        self.last: dict[str, Any] | None = None  # the last room message, decoded when kept
        self.keep_last = False
        self.changed = asyncio.Event()
        self._reply: asyncio.Future[dict[str, Any]] | None = None
        ws.on_frame = self.on_frame

    def on_frame(self, payload: bytes) -> None:
        if payload.startswith(PRESENCE_PREFIX):
            self.presence += 1
        elif payload.startswith(b'{"context":"user"'):
            self.said += 1
            if self.keep_last:
                self.last = loads(payload)
        elif b'"context":"response"' in payload:
            reply = loads(payload)
            waiting = self._reply
            if waiting and not waiting.done() and reply.get("messageId") == self.message_id:
                waiting.set_result(reply)
        self.changed.set()

    async def ask(self, event: str, **fields: Any) -> dict[str, Any]:
        """Send a verb, one at a time; its reply."""
        self.message_id += 1
        self._reply = asyncio.get_running_loop().create_future()
        self.ws.send(dumps({"event": event, "messageId": self.message_id, **fields}))
        return await asyncio.wait_for(self._reply, CONNECT_TIMEOUT_S)

    async def until(self, count: Any, timeout: float = SETTLE_S) -> None:
        """Until ``count()`` holds."""
        deadline = time.monotonic() + timeout
        while not count():
            if time.monotonic() > deadline:
                raise RuntimeError("frames were lost: not all came within the deadline")
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), max(0.0, deadline - time.monotonic()))


async def _open(port: int, count: int, concurrency: int = 100) -> list[Client]:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> Client:
        async with gate:
            ws = await connect("127.0.0.1", port, "/primus", "plain", CONNECT_TIMEOUT_S)
            return Client(ws)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def _join(clients: list[Client], room: str, concurrency: int = 50) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(client: Client) -> None:
        async with gate:
            reply = await client.ask("roomAdd", room=room)
            if reply.get("status") != "OK":
                raise RuntimeError(f"could not join {room}: {reply}")

    await asyncio.gather(*(one(client) for client in clients))


def _close(clients: list[Client]) -> None:
    for client in clients:
        client.ws.close()


async def _everyone(clients: list[Client], count: Any) -> None:
    for client in clients:
        await client.until(lambda c=client: count(c))


# -- history: CPU per say, on and off --------------------------------------------------------------


def history(run_dir: Path, base: Path, redis: bool, sizes: Sizes) -> dict[str, Any]:
    """Server CPU per say in a plain room and in a room with history, alternated."""
    with squall(run_dir, base, redis) as (server, url):
        redis_pids = [_redis_pid(url)] if url else []
        return asyncio.run(_history(server, redis_pids, sizes))


async def _history(server: servers.Server, redis_pids: list[int], sizes: Sizes) -> dict[str, Any]:
    sender, *listeners = await _open(server.port, LISTENERS + 1)
    everyone = [sender, *listeners]
    for room in ("plain", "kept"):
        await _join(everyone, room)
    cpu: dict[str, float] = {"plain": 0.0, "kept": 0.0}
    redis_cpu: dict[str, float] = {"plain": 0.0, "kept": 0.0}
    says = int(clamp(sizes.says, 10, 20_000))
    try:
        await _say(sender, listeners, "plain", 50)  # warm-up
        for turn in range(sizes.rounds):
            order = ("plain", "kept") if turn % 2 == 0 else ("kept", "plain")
            for room in order:
                procstat.wait_idle(server.pids)
                cpu0, r0 = procstat.cpu_seconds(server.pids), procstat.cpu_seconds(redis_pids)
                await _say(sender, listeners, room, says)
                cpu[room] += procstat.cpu_seconds(server.pids) - cpu0
                redis_cpu[room] += procstat.cpu_seconds(redis_pids) - r0
    finally:
        _close(everyone)
    total = says * sizes.rounds
    off, on = 1e6 * cpu["plain"] / total, 1e6 * cpu["kept"] / total
    return {
        "says": total,
        "members": len(everyone),
        "cpu_us_per_say_off": off,
        "cpu_us_per_say_on": on,
        "cpu_ratio": on / off if off else None,
        "redis_cpu_us_per_say_off": 1e6 * redis_cpu["plain"] / total if redis_pids else None,
        "redis_cpu_us_per_say_on": 1e6 * redis_cpu["kept"] / total if redis_pids else None,
    }


async def _say(sender: Client, listeners: list[Client], room: str, count: int) -> None:
    """``count`` says, one in flight, until every listener has every one."""
    before = [listener.said for listener in listeners]
    for n in range(count):
        reply = await sender.ask("say", room=room, message=f"say {n}")
        if reply.get("status") != "OK":
            raise RuntimeError(f"say refused in {room}: {reply}")
    for listener, had in zip(listeners, before, strict=True):
        await listener.until(lambda c=listener, h=had: c.said >= h + count)


# -- presence: frames and CPU per join and leave in a room of 2 000 --------------------------------


def presence(run_dir: Path, base: Path, sizes: Sizes) -> dict[str, Any]:
    """Joins and leaves in a crowded room with presence, beside says in the same room."""
    with squall(run_dir, base, redis=False) as (server, _):
        measured = asyncio.run(_presence(server, sizes))
    return {**measured, "encodes_per_change": encodes_per_change(sizes.crowd)}


async def _presence(server: servers.Server, sizes: Sizes) -> dict[str, Any]:
    members = int(clamp(sizes.crowd, 1, MAX_CONNECTIONS - 1))
    crowd = await _open(server.port, members)
    probe = (await _open(server.port, 1))[0]
    try:
        for client in crowd:  # one at a time: each member has the joins of those after it
            await _join([client], "crowd")
        await _everyone(crowd, lambda c: c.presence >= 1)
        await crowd[0].until(lambda: crowd[0].presence >= members)  # the last join reached all
        procstat.wait_idle(server.pids)
        had = [c.presence for c in crowd]
        cpu0 = procstat.cpu_seconds(server.pids)
        for _ in range(sizes.changes):
            await _join([probe], "crowd")
            await probe.ask("roomLeave", room="crowd")
        await _everyone(crowd, lambda c: c.presence >= had[crowd.index(c)] + 2 * sizes.changes)
        cpu_presence = procstat.cpu_seconds(server.pids) - cpu0
        received = sum(c.presence for c in crowd) - sum(had)
        await _join([probe], "crowd")
        await _everyone(crowd, lambda c: c.presence >= had[crowd.index(c)] + 2 * sizes.changes + 1)
        procstat.wait_idle(server.pids)
        cpu0 = procstat.cpu_seconds(server.pids)
        await _say(probe, crowd, "crowd", sizes.changes)
        cpu_say = procstat.cpu_seconds(server.pids) - cpu0
    finally:
        _close([*crowd, probe])
    changes = 2 * sizes.changes
    per_frame = 1e6 * cpu_presence / received if received else None
    per_delivery = 1e6 * cpu_say / (sizes.changes * (members + 1))
    return {
        "members": members,
        "changes": changes,
        "frames_per_member_per_change": received / (changes * members),
        "cpu_us_per_change": 1e6 * cpu_presence / changes,
        "cpu_us_per_presence_frame": per_frame,
        "cpu_us_per_say_delivery": per_delivery,
        "frame_vs_say": per_frame / per_delivery if per_frame and per_delivery else None,
    }


def encodes_per_change(members: int) -> float:
    """JSON encodings per join and per leave in a room of ``members``, counted in process
    (Squall's own Rooms over the memory broker; connections that record nothing)."""
    from squall import codec
    from squall.broker import MemoryBroker
    from squall.connections import Connection, ConnectionRegistry
    from squall.errors import DEFAULT_TEMPLATES, ErrorMessages
    from squall.rooms import Rooms

    class Sink:
        def write_frame(self, payload: bytes) -> None:
            """Frames go nowhere: only the encodings are counted."""

        def close(self, code: int, reason: str) -> None:
            """Nothing to close."""

    async def count() -> float:
        broker = MemoryBroker()
        rooms = Rooms(broker, [], ErrorMessages(DEFAULT_TEMPLATES))
        await broker.start(rooms, ConnectionRegistry())
        await rooms.add("crowd", {"presence": True})
        crowd = [Connection("webSocket", "127.0.0.1", 1, transport=Sink()) for _ in range(members)]
        for member in crowd:
            await rooms.join(member, "crowd")
        while len(asyncio.all_tasks()) > 1:  # the joiners' releases write what they were held
            await asyncio.sleep(0)
        real, calls = codec.dumps, 0

        def counting(value: Any) -> bytes:
            nonlocal calls
            calls += 1
            return real(value)

        probe = Connection("webSocket", "127.0.0.1", 2, transport=Sink())
        codec.dumps = counting
        try:
            await rooms.join(probe, "crowd")
            await rooms.leave(probe, "crowd")
        finally:
            codec.dumps = real
        return calls / 2

    return asyncio.run(count())


# -- recovery: the round trip of a roomAdd that recovers 100 messages ------------------------------


def recovery(run_dir: Path, base: Path, redis: bool, sizes: Sizes) -> dict[str, Any]:
    """A client that missed :attr:`Sizes.missed` messages joins with ``since``, repeatedly."""
    with squall(run_dir, base, redis) as (server, url):
        return asyncio.run(_recovery(server, url, sizes))


async def _recovery(server: servers.Server, url: str | None, sizes: Sizes) -> dict[str, Any]:
    talker, back = await _open(server.port, 2)
    talker.keep_last = True
    try:
        await _join([talker], "kept")
        for n in range(sizes.missed):
            await talker.ask("say", room="kept", message=f"missed {n}")
        await talker.until(lambda: talker.said >= sizes.missed)
        last = talker.last or {}
        since = {"offset": last["offset"] - sizes.missed, "epoch": last["epoch"]}
        procstat.wait_idle(server.pids)
        lat: list[float] = []
        recovered = 0
        before = _redis_stats(url) if url else {}
        for _ in range(sizes.recoveries):
            started = now()
            reply = await back.ask("roomAdd", room="kept", since=since)
            lat.append(now() - started)
            data = reply.get("data") or {}
            if data.get("recovered") and len(data.get("messages", ())) == sizes.missed:
                recovered += 1
            await back.ask("roomLeave", room="kept")
        after = _redis_stats(url) if url else {}
    finally:
        _close([talker, back])
    lat.sort()
    result = {
        "missed": sizes.missed,
        "recoveries": sizes.recoveries,
        "recovered_whole": recovered,
        "p50_ms": percentile_ms(lat, 50),
        "p99_ms": percentile_ms(lat, 99),
    }
    if url:
        calls = {name: after[name] - before.get(name, 0) for name in after}
        result["evalsha_per_recovery"] = calls.get("evalsha", 0) / sizes.recoveries
        result["redis_commands_per_join_and_leave"] = sum(calls.values()) / sizes.recoveries
    return result


# -- Redis -----------------------------------------------------------------------------------------


def _redis_cli(url: str, *command: str) -> str:
    port = url.rsplit(":", 1)[1].split("/")[0]
    done = subprocess.run(
        ["redis-cli", "-p", port, *command], capture_output=True, text=True, timeout=10
    )
    return done.stdout


def _redis_pid(url: str) -> int:
    for line in _redis_cli(url, "INFO", "server").splitlines():
        if line.startswith("process_id:"):
            return int(line.partition(":")[2])
    raise RuntimeError("redis-server did not say its process id")


def _redis_stats(url: str) -> dict[str, int]:
    """Calls that succeeded per command so far (``INFO commandstats``; a script's first call,
    answered NOSCRIPT before the client loads it, does not count)."""
    calls = {}
    for line in _redis_cli(url, "INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            name, _, text = line[len("cmdstat_") :].strip().partition(":")
            fields = dict(field.partition("=")[::2] for field in text.split(","))
            calls[name] = int(fields["calls"]) - int(fields.get("failed_calls", 0))
    return calls
