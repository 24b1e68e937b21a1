"""Soak: many clients chat and reconnect for minutes; memory must not creep, nothing is lost.

Issue 7, item 6. Not part of the test suite (it takes minutes). Run from the repository root:

    .venv/bin/python bench/soak.py                         # 2 000 clients, 10 minutes
    .venv/bin/python bench/soak.py --clients 200 --minutes 1
    .venv/bin/python bench/soak.py --url ws://127.0.0.1:8080/primus   # a server you started

What it does:

1. starts its own Squall (``server.py --env production``, logLevel warning, on a free loopback
   port, ``maxConnectionsPerAddress`` raised for clients that all come from 127.0.0.1) unless
   ``--url`` names one; the URL must be a loopback address;
2. connects ``--clients`` WebSocket clients (at most 200 handshakes at a time); each takes its
   welcome and joins ``defaultRoom``;
3. for ``--minutes``: one client at a time, picked at random, says a numbered message in
   ``defaultRoom`` (``--say-rate`` per second, one say in flight), and random clients leave and
   come back (``--reconnect-rate`` per second; half close politely with a close frame, half
   vanish with a TCP reset) and join again;
4. reads the server's RSS (``status`` action, ``memory.rss``) after the warm-up
   (``--warmup`` seconds) and at the end, with every client connected both times;
5. stops the churn and compares ``status``'s live socket count with the clients the soak holds,
   then closes every client and compares again (expected: 0);
6. prints a markdown table and exits 1 when a check fails: RSS at the end more than 10 % above
   the warm-up's, a socket count that differs, a lost delivery, or any error.

Lost deliveries are exact, not estimated: says are numbered and only one is in flight, so each
member sees a contiguous run of numbers. A session (one connection of one client) must receive
every say sent after its roomAdd was acknowledged and acknowledged before it closed politely
(sessions ended by a reset are checked up to their last received message only: a reset throws
away what was in flight, by definition).

Bounds: at most 5 000 clients, 30 minutes, 50 says and 50 reconnects a second; loopback only.
Each client answers protocol pings, so the server's heartbeat keeps them. Standard library only
(websockets' C masking is used when installed).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ipaddress
import json
import os
import random
import resource
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: bench.wsclient is a sibling module

from bench.wsclient import client_frame  # noqa: E402

MAX_CLIENTS = 5_000
MAX_MINUTES = 30.0
MAX_RATE = 50.0
CONNECT_CONCURRENCY = 200
TIMEOUT = 10.0
ROOM = "defaultRoom"
RSS_LIMIT = 0.10  # RSS at the end may exceed the warm-up's by at most this fraction


# --- a minimal WebSocket client (RFC 6455), one asyncio protocol per connection ---------------


def _frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame, masked with a fresh random key as a browser masks it."""
    return client_frame(0x80 | opcode, payload)


class Session(asyncio.Protocol):
    """One connection of one client: handshake, frames in, replies matched by messageId."""

    def __init__(self, soak: Soak, host: str, port: int, path: str) -> None:
        self.soak = soak
        self.handshake = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.welcomed = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.we_closed = False
        self.pending: dict[int, asyncio.Future[dict]] = {}
        self.next_id = 0
        self.joined_after: int | None = None  # says numbered above this must reach us
        self.first = self.last = None  # the run of say numbers received
        self.received = 0
        self.gaps = 0

    # asyncio protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.handshake)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            del self.buffer[: end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self._fail(ConnectionError(head.split(b"\r\n", 1)[0].decode("latin-1")))
                return
            self.upgraded = True
            if not self.opened.done():
                self.opened.set_result(None)
        self._frames()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_code is None:
            self.close_code = 1006
        self._fail(ConnectionError("connection lost"))
        if not self.closed.done():
            self.closed.set_result(None)

    # frames

    def _frames(self) -> None:
        buffer = self.buffer
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            size, offset = second & 0x7F, 2
            if size == 126:
                if len(buffer) < 4:
                    return
                size, offset = struct.unpack_from("!H", buffer, 2)[0], 4
            elif size == 127:
                if len(buffer) < 10:
                    return
                size, offset = struct.unpack_from("!Q", buffer, 2)[0], 10
            if len(buffer) < offset + size:
                return
            payload = bytes(buffer[offset : offset + size])
            del buffer[: offset + size]
            opcode = first & 0x0F
            if opcode == 0x1:
                self._text(payload)
            elif opcode == 0x9:
                self.write(_frame(0xA, payload))
            elif opcode == 0x8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                if not self.we_closed:
                    self.write(_frame(0x8, payload[:2]))
                if self.transport is not None:
                    self.transport.close()
                return

    def _text(self, payload: bytes) -> None:
        frame = json.loads(payload)
        context = frame.get("context")
        if context == "user":
            self._delivery(frame["message"])
        elif context == "response":
            future = self.pending.pop(frame.get("messageId"), None)
            if future is not None and not future.done():
                future.set_result(frame)
        elif context == "api" and not self.welcomed.done():
            self.welcomed.set_result(None)

    def _delivery(self, message: dict) -> None:
        number = message["n"]
        self.received += 1
        self.soak.deliveries += 1
        if self.first is None:
            self.first = number
        elif number != self.last + 1:
            self.gaps += 1
        self.last = number

    def _fail(self, error: Exception) -> None:
        for future in (self.opened, self.welcomed, *self.pending.values()):
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: nobody may be waiting any more
        self.pending.clear()

    # verbs

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def request(self, event: str, **fields: object) -> dict:
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        frame = {"event": event, "messageId": self.next_id, **fields}
        self.write(_frame(0x1, json.dumps(frame).encode()))
        return await asyncio.wait_for(future, TIMEOUT)

    async def close_politely(self) -> None:
        """A close frame; every frame the server sent before its own close is read."""
        self.we_closed = True
        self.write(_frame(0x8, struct.pack("!H", 1000)))
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), TIMEOUT)
        except TimeoutError:
            self.soak.errors["close not answered"] += 1
            self.abort()

    def abort(self) -> None:
        """Vanish: a TCP reset (SO_LINGER 0), no close frame."""
        self.we_closed = True
        if self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


# --- the soak --------------------------------------------------------------------------------


@dataclass
class Ended:
    """What must be checked of a session once it is over."""

    joined_after: int
    first: int | None
    last: int | None
    received: int
    gaps: int
    acked_before_close: int  # the last say acknowledged before we closed it
    polite: bool


@dataclass
class Soak:
    host: str
    port: int
    path: str
    clients: int
    seconds: float
    warmup: float
    say_rate: float
    reconnect_rate: float
    sessions: list[Session | None] = field(default_factory=list)
    ended: list[Ended] = field(default_factory=list)
    deliveries: int = 0
    says_sent: int = 0
    says_acked: int = 0
    last_acked: int = 0
    reconnects: dict[str, int] = field(default_factory=lambda: {"polite": 0, "reset": 0})
    errors: dict[str, int] = field(
        default_factory=lambda: {
            "connect failures": 0,
            "error replies": 0,
            "unexpected closes": 0,
            "close not answered": 0,
        }
    )
    running: bool = True

    async def connect(self, index: int, gate: asyncio.Semaphore) -> None:
        """Open client ``index``'s next session: upgrade, welcome, roomAdd."""
        async with gate:
            loop = asyncio.get_running_loop()
            session = Session(self, self.host, self.port, self.path)
            try:
                await asyncio.wait_for(
                    loop.create_connection(lambda: session, self.host, self.port), TIMEOUT
                )
                await asyncio.wait_for(session.welcomed, TIMEOUT)
                reply = await session.request("roomAdd", room=ROOM)
                # says sent from now on come after the join: every one of them must reach us
                session.joined_after = self.says_sent
            except (OSError, ConnectionError, TimeoutError):
                self.errors["connect failures"] += 1
                session.abort()
                self.sessions[index] = None
                return
            if reply.get("status") != "OK":
                self.errors["error replies"] += 1
            session.closed.add_done_callback(lambda _: self._closed(session))
            self.sessions[index] = session

    def _closed(self, session: Session) -> None:
        if not session.we_closed:
            self.errors["unexpected closes"] += 1

    def record(self, session: Session, polite: bool, acked_before_close: int) -> None:
        self.ended.append(
            Ended(
                session.joined_after or 0,
                session.first,
                session.last,
                session.received,
                session.gaps,
                acked_before_close,
                polite,
            )
        )

    async def chatter(self) -> None:
        """One numbered say at a time, from a random member, at ``say_rate`` per second."""
        interval = 1 / self.say_rate
        while self.running:
            started = time.monotonic()
            live = [s for s in self.sessions if s is not None and not s.we_closed]
            if live:
                speaker = random.choice(live)
                self.says_sent += 1
                number = self.says_sent
                try:
                    reply = await speaker.request("say", room=ROOM, message={"n": number})
                except (ConnectionError, TimeoutError):
                    reply = None  # the speaker was reset mid-say: fine, it may be lost
                if reply is not None:
                    if reply.get("status") == "OK":
                        self.says_acked += 1
                        self.last_acked = number
                    else:
                        self.errors["error replies"] += 1
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def churn(self, gate: asyncio.Semaphore) -> None:
        """Random clients leave (politely or by reset) and come back, ``reconnect_rate``/s."""
        interval = 1 / self.reconnect_rate
        while self.running:
            started = time.monotonic()
            index = random.randrange(self.clients)
            session = self.sessions[index]
            if session is not None:
                polite = random.random() < 0.5
                acked = self.last_acked
                self.sessions[index] = None
                if polite:
                    await session.close_politely()
                else:
                    session.abort()
                self.record(session, polite, acked)
                self.reconnects["polite" if polite else "reset"] += 1
                await self.connect(index, gate)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    def lost(self) -> int:
        """Says a session should have received but did not (see the module docstring)."""
        missing = 0
        for end in self.ended:
            missing += end.gaps
            expected_last = end.acked_before_close if end.polite else (end.last or 0)
            expected_first = end.joined_after + 1
            if expected_last < expected_first:
                continue
            if end.first is None:
                missing += expected_last - expected_first + 1
                continue
            missing += max(0, end.first - expected_first)
            missing += max(0, expected_last - end.last)
        return missing

    async def status(self) -> dict:
        """The server's ``status`` action, over HTTP."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), TIMEOUT
        )
        try:
            request = f"GET /api/status HTTP/1.1\r\nHost: {self.host}\r\nConnection: close\r\n\r\n"
            writer.write(request.encode())
            raw = await asyncio.wait_for(reader.read(), TIMEOUT)
        finally:
            writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"status failed: {head[:80]!r}")
        return json.loads(body)

    async def sockets_match(self, expected: int, wait: float = TIMEOUT) -> tuple[int, float]:
        """Poll ``status`` until it reports ``expected`` sockets (a reset peer takes the server
        a moment to notice); the last count seen and how long it took."""
        started = time.monotonic()
        while True:
            seen = (await self.status())["connections"].get("webSocket", 0)
            if seen == expected or time.monotonic() - started > wait:
                return seen, time.monotonic() - started
            await asyncio.sleep(0.1)  # poll interval: the server's count has no event to await

    async def run(self) -> dict:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        self.sessions = [None] * self.clients
        await asyncio.gather(*(self.connect(i, gate) for i in range(self.clients)))
        started = time.monotonic()
        tasks = [asyncio.create_task(self.chatter()), asyncio.create_task(self.churn(gate))]
        results: dict = {"connected at start": sum(s is not None for s in self.sessions)}
        await asyncio.sleep(self.warmup)  # the soak's clock: warm-up is a duration by definition
        results["rss warm"] = (await self.status())["memory"]["rss"]
        results["held warm"] = sum(s is not None for s in self.sessions)
        await asyncio.sleep(max(0.0, self.seconds - (time.monotonic() - started)))
        self.running = False
        await asyncio.gather(*tasks)
        # everyone back before the end measurement, as at the warm-up one
        await asyncio.gather(
            *(self.connect(i, gate) for i, s in enumerate(self.sessions) if s is None)
        )
        held = sum(s is not None for s in self.sessions)
        results["rss end"] = (await self.status())["memory"]["rss"]
        results["held end"] = held
        results["sockets end"] = await self.sockets_match(held)
        acked = self.last_acked
        closing = [s for s in self.sessions if s is not None]
        await asyncio.gather(*(s.close_politely() for s in closing))
        for session in closing:
            self.record(session, True, acked)
        self.sessions = [None] * self.clients
        results["sockets closed"] = await self.sockets_match(0)
        results["elapsed"] = time.monotonic() - started
        return results


# --- the server, the report, the command line ---------------------------------------------------


def require_loopback(host: str) -> str:
    literal = "127.0.0.1" if host == "localhost" else host
    try:
        address = ipaddress.ip_address(literal)
    except ValueError:
        raise SystemExit(f"soak: --url must name a loopback address, got {host!r}") from None
    if not address.is_loopback:
        raise SystemExit(f"soak: --url must name a loopback address, got {host!r}")
    return literal


def start_server(folder: Path, port: int | None) -> tuple[subprocess.Popen, int, Path]:
    """A Squall of our own: production environment, logLevel warning, loopback only, on
    ``port`` or a free one."""
    if port is None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    config = folder / "soak.yaml"
    # every client comes from 127.0.0.1: production's 100 sockets per address would refuse all
    # but the first hundred
    config.write_text(
        "general:\n  logLevel: warning\n"
        "servers:\n  web:\n    bindIP: 127.0.0.1\n"
        f"  websocket:\n    server:\n      maxConnectionsPerAddress: {MAX_CLIENTS}\n"
    )
    log = folder / "server.log"
    python = REPO / ".venv" / "bin" / "python"
    command = [
        str(python if python.exists() else sys.executable),
        "server.py",
        "--port",
        str(port),
        "--env",
        "production",
        "--config",
        str(config),
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=out)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"soak: the server exited at boot; see {log}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return process, port, log
        time.sleep(0.1)  # boot poll: a starting process has no event to await
    process.kill()
    raise SystemExit(f"soak: the server did not listen within 30 s; see {log}")


def stop_server(process: subprocess.Popen) -> int | None:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(timeout=10)


def report(soak: Soak, results: dict) -> tuple[str, bool]:
    mib = 1024 * 1024
    warm, end = results["rss warm"], results["rss end"]
    change = (end - warm) / warm
    sockets_end, settle_end = results["sockets end"]
    sockets_closed, settle_closed = results["sockets closed"]
    lost = soak.lost()
    errors = sum(soak.errors.values())
    checks = {
        "rss": change <= RSS_LIMIT,
        "sockets end": sockets_end == results["held end"],
        "sockets closed": sockets_closed == 0,
        "lost": lost == 0,
        "errors": errors == 0,
    }

    def verdict(key: str) -> str:
        return "ok" if checks[key] else "**FAIL**"

    rows = [
        ("clients", f"{soak.clients} (connected at start: {results['connected at start']})", ""),
        (
            "duration",
            f"{results['elapsed']:.0f} s (warm-up {soak.warmup:.0f} s); say {soak.say_rate:g}/s,"
            f" reconnect {soak.reconnect_rate:g}/s",
            "",
        ),
        ("RSS after warm-up", f"{warm / mib:.1f} MiB ({results['held warm']} clients held)", ""),
        ("RSS at the end", f"{end / mib:.1f} MiB ({results['held end']} clients held)", ""),
        ("RSS change", f"{change * 100:+.1f} % (limit +{RSS_LIMIT * 100:.0f} %)", verdict("rss")),
        (
            "live sockets: status vs soak, at the end",
            f"{sockets_end} vs {results['held end']} (settled in {settle_end:.1f} s)",
            verdict("sockets end"),
        ),
        (
            "live sockets: status vs soak, after closing all",
            f"{sockets_closed} vs 0 (settled in {settle_closed:.1f} s)",
            verdict("sockets closed"),
        ),
        ("says acknowledged", f"{soak.says_acked} of {soak.says_sent}", ""),
        ("deliveries", f"{soak.deliveries}", ""),
        ("lost deliveries", f"{lost}", verdict("lost")),
        (
            "reconnects",
            f"{sum(soak.reconnects.values())} ({soak.reconnects['polite']} polite, "
            f"{soak.reconnects['reset']} reset)",
            "",
        ),
        (
            "errors",
            f"{errors} (" + ", ".join(f"{k} {v}" for k, v in soak.errors.items()) + ")",
            verdict("errors"),
        ),
    ]
    lines = ["| measure | value | check |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines), all(checks.values())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/soak.py",
        description="Soak a Squall server: clients chat in defaultRoom and reconnect at random; "
        "report RSS drift, the live-socket count and lost deliveries.",
    )
    parser.add_argument("--clients", type=int, default=2000, help="clients (default 2000)")
    parser.add_argument("--minutes", type=float, default=10.0, help="duration (default 10)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds before the first RSS reading (default: 60, or a quarter of short runs)",
    )
    parser.add_argument("--say-rate", type=float, default=5.0, help="says per second (default 5)")
    parser.add_argument(
        "--reconnect-rate", type=float, default=5.0, help="reconnects per second (default 5)"
    )
    parser.add_argument(
        "--url", help="soak this server (a loopback ws:// URL) instead of starting one"
    )
    parser.add_argument("--port", type=int, help="port for the server the soak starts")
    parser.add_argument("--seed", type=int, help="random seed, to repeat a run")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= MAX_CLIENTS:
        parser.error(f"--clients must be 1..{MAX_CLIENTS}")
    if not 0 < args.minutes <= MAX_MINUTES:
        parser.error(f"--minutes must be in (0, {MAX_MINUTES:g}]")
    for name in ("say_rate", "reconnect_rate"):
        if not 0 < getattr(args, name) <= MAX_RATE:
            parser.error(f"--{name.replace('_', '-')} must be in (0, {MAX_RATE:g}]")
    seconds = args.minutes * 60
    if args.warmup is None:
        args.warmup = min(60.0, seconds / 4)
    if not 0 <= args.warmup < seconds:
        parser.error("--warmup must be shorter than the run")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.seed is not None:
        random.seed(args.seed)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server inherits it too
    if hard < 2 * args.clients + 100:
        raise SystemExit(f"soak: ulimit -n is {hard}; {args.clients} clients need more")
    process, log = None, None
    with tempfile.TemporaryDirectory(prefix="squall-soak-") as folder:
        if args.url:
            url = urllib.parse.urlsplit(args.url)
            host, port, path = require_loopback(url.hostname or ""), url.port or 80, url.path
        else:
            process, port, log = start_server(Path(folder), args.port)
            host, path = "127.0.0.1", "/primus"
        soak = Soak(
            host=host,
            port=port,
            path=path or "/primus",
            clients=args.clients,
            seconds=args.minutes * 60,
            warmup=args.warmup,
            say_rate=args.say_rate,
            reconnect_rate=args.reconnect_rate,
        )
        try:
            results = asyncio.run(soak.run())
        finally:
            exit_code = stop_server(process) if process is not None else None
        table, passed = report(soak, results)
        print(table)
        if exit_code not in (None, 0):
            print(f"\nthe server exited with {exit_code}")
            passed = False
        if not passed and log is not None:
            print("\nthe server's log ends with:\n" + "\n".join(log.read_text().splitlines()[-20:]))
        print("\nsoak:", "PASS" if passed else "FAIL")
        return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
