"""One load-generator process: holds its share of connections and runs commands from the parent.

The parent (bench.loadgen) forks several of these so client-side CPU can be spread over cores.
Each worker runs one event loop (uvloop when installed) and obeys a small command set sent over a
pipe: open, room, join, rpc, fanout, status, close. Between commands the loop keeps running, so
held connections keep answering heartbeats while the parent measures an idle server.

Every command is bounded: by a count (connections, messages) and by a deadline the parent passes.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import os
import resource
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from bench.limits import CONNECT_TIMEOUT_S, MAX_CONNECTIONS, MAX_MESSAGES, MAX_WINDOW
from bench.wsclient import WSClient, connect, loads, request

now = time.perf_counter  # CLOCK_MONOTONIC: comparable between processes on Linux


@dataclass(frozen=True)
class Target:
    """Where to connect: one host, one or more ports (several = a cluster), the socket path."""

    host: str
    ports: tuple[int, ...]
    path: str
    dialect: str


def own_cpu() -> float:
    """CPU seconds this worker has used, to show whether the generator was the bottleneck."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def latencies(values: list[float]) -> bytes:
    """Pack latencies (seconds) compactly for the pipe: 8 bytes each instead of a pickled float."""
    return array.array("d", values).tobytes()


class Rpc:
    """Shared state of one rpc run: each connection does sequential action round trips."""

    def __init__(self, action: str, t_start: float, t_end: float, count: int) -> None:
        self.prefix = b'{"event":"action","params":{"action":"%s"},"messageId":' % action.encode()
        self.t_start, self.t_end = t_start, t_end
        self.lat: list[float] = []
        self.errors = self.lost = 0
        self.running = count
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not count:
            self.done.set_result(None)

    def finished(self) -> None:
        self.running -= 1
        if not self.running and not self.done.done():
            self.done.set_result(None)


class RpcDriver:
    """One connection's loop: send, await the reply with this messageId, record, send again."""

    __slots__ = ("client", "live", "message_id", "run", "sent_at")

    def __init__(self, client: WSClient, run: Rpc) -> None:
        self.client, self.run = client, run
        self.message_id, self.sent_at, self.live = 0, 0.0, True
        client.on_frame = self.on_frame
        client.closed.add_done_callback(self.on_lost)

    def fire(self) -> None:
        self.message_id += 1
        self.sent_at = now()
        self.client.send(self.run.prefix + b"%d}" % self.message_id)

    def on_frame(self, payload: bytes) -> None:
        t = now()
        reply = loads(payload)
        if type(reply) is not dict or reply.get("messageId") != self.message_id:
            return  # a push (welcome, say) rather than our reply
        run = self.run
        if run.t_start <= t < run.t_end:
            run.lat.append(t - self.sent_at)
            if "error" in reply:
                run.errors += 1
        if t < run.t_end:
            self.fire()
        elif self.live:
            self.live = False
            run.finished()

    def on_lost(self, _fut: asyncio.Future) -> None:
        if self.live:
            self.live = False
            self.run.lost += 1
            self.run.finished()


class Fanout:
    """Shared state of one fan-out run on the receiving side."""

    def __init__(self, messages: int, members: int) -> None:
        self.messages, self.waiting = messages, members
        self.lat: list[float] = []
        self.last = 0.0
        self.bad = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not members:
            self.done.set_result(None)


def sent_at(payload: bytes) -> float | None:
    """The sender's timestamp in a say push, None for any other frame, ValueError if malformed.

    Compact JSON (what every measured server sends) is scanned without decoding it, which halves
    the generator's cost per delivery; any other spelling falls back to a full decode.
    """
    start = payload.find(b'"message":"')
    if start >= 0 and b'"context":"user"' in payload:
        colon = payload.index(b":", start + 11)
        return float(payload[colon + 1 : payload.index(b'"', colon)])
    push = loads(payload)
    if type(push) is not dict or push.get("context") != "user":
        return None
    return float(str(push.get("message")).partition(":")[2])


class Member:
    """A receiving member: the say message is "<seq>:<sender perf_counter>"."""

    __slots__ = ("count", "run")

    def __init__(self, run: Fanout) -> None:
        self.run, self.count = run, 0

    def on_frame(self, payload: bytes) -> None:
        t = now()
        run = self.run
        try:
            sent = sent_at(payload)
        except ValueError:
            run.bad += 1
            return
        if sent is None:
            return
        run.lat.append(t - sent)
        run.last = t
        self.count += 1
        if self.count == run.messages:
            run.waiting -= 1
            if not run.waiting and not run.done.done():
                run.done.set_result(None)


class Sender:
    """Says ``messages`` times into the room keeping ``window`` un-acked says in flight."""

    def __init__(self, client: WSClient, room: str, messages: int, window: int) -> None:
        self.client, self.room = client, room.encode()
        self.messages, self.window = messages, window
        self.sent = self.acked = self.errors = 0
        self.first = self.last_ack = 0.0
        self.pending: set[int] = set()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        client.on_frame = self.on_frame

    def pump(self) -> None:
        while len(self.pending) < self.window and self.sent < self.messages:
            self.sent += 1
            self.pending.add(self.sent)
            self.client.send(
                b'{"event":"say","room":"%s","message":"%d:%.7f","messageId":%d}'
                % (self.room, self.sent, now(), self.sent)
            )

    def on_frame(self, payload: bytes) -> None:
        reply = loads(payload)
        if type(reply) is not dict or reply.get("context") != "response":
            return  # our own copy of the broadcast
        message_id = reply.get("messageId")
        if message_id not in self.pending:
            return
        self.pending.discard(message_id)
        self.acked += 1
        self.last_ack = now()
        if reply.get("error"):
            self.errors += 1
        if self.acked >= self.messages:
            if not self.done.done():
                self.done.set_result(None)
        else:
            self.pump()


class Worker:
    """Owns this process's connections and executes the parent's commands one at a time."""

    def __init__(self, index: int, target: Target, pipe: Connection) -> None:
        self.index, self.target, self.pipe = index, target, pipe
        self.clients: list[WSClient] = []
        self.sender: WSClient | None = None

    async def serve(self) -> None:
        """Read commands until "close"; every reply is ("ok", result) or ("error", text)."""
        while True:
            name, args = await self._recv()
            try:
                result = await getattr(self, "cmd_" + name)(**args)
                reply: tuple[str, Any] = ("ok", result)
            except Exception as exc:  # report to the parent instead of dying silently
                reply = ("error", f"worker {self.index} {name}: {exc!r}"[:500])
            self.pipe.send(reply)
            if name == "close":
                return

    async def _recv(self) -> tuple[str, dict[str, Any]]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        fd = self.pipe.fileno()
        loop.add_reader(fd, lambda: fut.done() or fut.set_result(None))
        try:
            await fut
        finally:
            loop.remove_reader(fd)
            os.set_blocking(fd, True)  # uvloop leaves it non-blocking; a large send would fail
        return self.pipe.recv()

    def _port(self, i: int) -> int:
        ports = self.target.ports
        return ports[(self.index + i) % len(ports)]

    async def _connect(self, port: int) -> WSClient:
        t = self.target
        return await connect(t.host, port, t.path, t.dialect, CONNECT_TIMEOUT_S)

    async def cmd_open(self, count: int, concurrency: int) -> dict[str, Any]:
        """Open connections until this worker holds ``count`` (handshake + welcome each)."""
        count = min(count, MAX_CONNECTIONS)
        gate = asyncio.Semaphore(max(1, concurrency))
        lat: list[float] = []
        errors: list[str] = []
        start = now()

        async def one(i: int) -> None:
            async with gate:
                t0 = now()
                try:
                    client = await self._connect(self._port(i))
                except (TimeoutError, OSError, ConnectionError) as exc:
                    errors.append(repr(exc)[:160])
                    return
                lat.append(now() - t0)
                self.clients.append(client)

        await asyncio.gather(*(one(i) for i in range(len(self.clients), count)))
        return {
            "opened": len(lat),
            "errors": len(errors),
            "error_sample": errors[:3],
            "elapsed": now() - start,
            "lat": latencies(lat),
        }

    async def cmd_room(self, room: str) -> dict[str, Any]:
        """Worker 0 only: open the sender, create ``room`` (createChatRoom action), join it."""
        if self.index:
            return {}
        self.sender = await self._connect(self.target.ports[0])
        created = await request(
            self.sender,
            {
                "event": "action",
                "params": {"action": "createChatRoom", "name": room},
                "messageId": 1,
            },
            CONNECT_TIMEOUT_S,
        )
        joined = await request(
            self.sender, {"event": "roomAdd", "room": room, "messageId": 2}, CONNECT_TIMEOUT_S
        )
        return {"create_error": created.get("error"), "join_error": joined.get("error")}

    async def cmd_join(self, room: str, concurrency: int) -> dict[str, Any]:
        """roomAdd every held connection; errors are counted, the first few kept."""
        gate = asyncio.Semaphore(max(1, concurrency))
        errors: list[str] = []

        async def one(client: WSClient) -> None:
            async with gate:
                try:
                    frame = {"event": "roomAdd", "room": room, "messageId": 1}
                    reply = await request(client, frame, CONNECT_TIMEOUT_S * 3)
                except (TimeoutError, ConnectionError) as exc:
                    errors.append(repr(exc)[:160])
                    return
                if reply.get("error"):
                    errors.append(str(reply["error"])[:160])

        await asyncio.gather(*(one(c) for c in self.clients))
        return {
            "joined": len(self.clients) - len(errors),
            "errors": len(errors),
            "error_sample": errors[:3],
        }

    async def cmd_rpc(
        self, action: str, t_start: float, t_end: float, drain: float
    ) -> dict[str, Any]:
        """Sequential round trips on every connection from ``t_start`` until ``t_end``."""
        run = Rpc(action, t_start, t_end, len(self.clients))
        drivers = [RpcDriver(c, run) for c in self.clients]
        await asyncio.sleep(max(0.0, t_start - now() - 0.5))  # start a little early: warm, steady
        cpu0 = own_cpu()
        for driver in drivers:
            driver.fire()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(run.done), max(0.1, t_end + drain - now()))
        for client in self.clients:
            client.on_frame = _ignore
        return {
            "lat": latencies(run.lat),
            "errors": run.errors,
            "lost": run.lost,
            "stuck": run.running,
            "gen_cpu": own_cpu() - cpu0,
        }

    async def cmd_fanout(
        self, messages: int, window: int, t_start: float, deadline: float, room: str
    ) -> dict[str, Any]:
        """Members count deliveries; worker 0's sender says ``messages`` times into ``room``."""
        messages = min(messages, MAX_MESSAGES)
        run = Fanout(messages, len(self.clients))
        for client in self.clients:
            client.on_frame = Member(run).on_frame
        sender = None
        if self.sender is not None:
            sender = Sender(self.sender, room, messages, min(max(1, window), MAX_WINDOW))
        await asyncio.sleep(max(0.0, t_start - now()))
        cpu0 = own_cpu()
        waits = [run.done]
        if sender is not None:
            sender.first = now()
            sender.pump()
            waits.append(sender.done)
        await asyncio.wait(waits, timeout=max(0.1, deadline - now()))
        for client in self.clients:
            client.on_frame = _ignore
        result = {
            "lat": latencies(run.lat),
            "delivered": len(run.lat),
            "bad": run.bad,
            "last": run.last,
            "gen_cpu": own_cpu() - cpu0,
        }
        if sender is not None:
            result.update(
                first=sender.first,
                sent=sender.sent,
                acked=sender.acked,
                say_errors=sender.errors,
                last_ack=sender.last_ack,
            )
        return result

    async def cmd_status(self) -> dict[str, Any]:
        """How many connections are still open and how many heartbeats they answered."""
        alive = sum(1 for c in self.clients if not c.is_closed)
        return {"alive": alive, "pings": sum(c.pings_answered for c in self.clients)}

    async def cmd_close(self) -> dict[str, Any]:
        """Close everything (1000) and give the frames a moment to leave."""
        for client in [*self.clients, *([self.sender] if self.sender else [])]:
            client.close()
        await asyncio.sleep(0.1)
        return {}


def _ignore(_payload: bytes) -> None:
    """Frame handler for connections that are between runs."""


def worker_main(index: int, target: Target, pipe: Connection) -> None:
    """Process entry point: pick the fastest loop available and serve commands."""
    try:
        from uvloop import run  # optional: the stdlib loop works, only slower
    except ImportError:
        run = asyncio.run
    run(Worker(index, target, pipe).serve())
    pipe.close()
