"""``python -m bench inproc {upgrade,rpc,http,status} [-n N] [--profile]``: Squall's own CPU per
operation, in one process, without sockets.

The server's real objects (the router, ``HTTP11Protocol``, the socket pump, the application)
are driven through a transport that only records what is written, so the figure is the Python
work of one operation with no kernel, no load generator and no other process in it: what a
change to the transport saves shows here even when the machine is too busy for the load
benchmarks to see it. ``--profile`` adds cProfile's top functions. Not comparable with the
load benchmarks' figures (those include the kernel's networking), only with itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import io
import logging
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bench.httpload import BROWSER_HEADERS
from bench.servers import OUT_OF_REACH, REPO
from bench.wsclient import BROWSER_UPGRADE_HEADERS, client_frame

sys.path.insert(0, str(REPO))  # server.py and handlers/ are the repository's, not a package's

import server
from handlers.http11 import HTTP11Protocol, ServerParams
from squall import Squall, load_config
from squall.logs import configure_logging

PEER = ("127.0.0.1", 50000)


class Recorder(asyncio.Transport):
    """A transport that keeps every write and never blocks: the server's side of a socket."""

    def __init__(self) -> None:
        super().__init__()
        self.protocol: Any = None
        self.writes: list[bytes] = []
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return PEER if name == "peername" else default

    def write(self, data: Any) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        """Reading is driven by the caller."""

    def resume_reading(self) -> None:
        """Reading is driven by the caller."""

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.protocol

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return 0


def upgrade_request() -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /primus HTTP/1.1",
        "Host: 127.0.0.1:8080",
        "Connection: Upgrade",
        "Upgrade: websocket",
        "Origin: http://127.0.0.1:8080",
        "Sec-WebSocket-Version: 13",
        f"Sec-WebSocket-Key: {key}",
        *BROWSER_UPGRADE_HEADERS,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Bench:
    """One Squall of this repository's config (production, logLevel warning unless told)."""

    def __init__(self, log_level: str = "warning") -> None:
        # production's bounds raised out of reach, as in the load benchmarks (servers.py)
        bounds = ("maxConnections", "maxConnectionsPerAddress", "rateLimit")
        overrides: dict[str, Any] = {"general.logLevel": log_level}
        overrides.update({f"servers.websocket.server.{key}": OUT_OF_REACH for key in bounds})
        config = load_config(REPO, "production", [], overrides)
        self.app = Squall(config)
        self.sockets = server.new_socket_registry(self.app)
        options = server.handler_options(self.app)
        self.router = server.build_router(options, self.sockets)
        web = config["servers"]["web"]
        self.params = ServerParams(
            max_header_size=web["maxHeaderSize"],
            max_body_size=web["maxBodySize"],
            idle_timeout=60.0,
            body_timeout=60.0,
        )

    def connection(self) -> Recorder:
        transport = Recorder()
        transport.protocol = HTTP11Protocol(self.router, self.params)
        transport.protocol.connection_made(transport)
        return transport

    async def socket(self) -> Recorder:
        """An open socket, its welcome written."""
        transport = self.connection()
        transport.protocol.data_received(upgrade_request())
        await _until(lambda: welcomed(transport))
        return transport


def welcomed(transport: Recorder) -> bool:
    """The welcome frame is written (after the 101, or in the same write)."""
    return any(b'"welcome"' in data for data in transport.writes)


async def _until(condition: Callable[[], bool], limit_s: float = 10.0) -> None:
    """Let the loop run until ``condition()`` holds (the answer is written), or fail."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no answer within {limit_s} s")
        await asyncio.sleep(0)


async def upgrades(bench: Bench, count: int) -> None:
    """``count`` upgrades, each to its welcome frame."""
    requests = [upgrade_request() for _ in range(count)]
    transports = []
    for request in requests:
        transport = bench.connection()
        transport.protocol.data_received(request)
        transports.append(transport)
        await asyncio.sleep(0)
    await _until(lambda: all(welcomed(t) for t in transports))
    if not transports[0].writes[0].startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"upgrade refused: {transports[0].writes[0][:200]!r}")


async def round_trips(bench: Bench, count: int) -> None:
    """``count`` randomNumber actions on one socket, one at a time, each to its reply."""
    transport = await bench.socket()
    frames = [
        client_frame(
            0x81, b'{"event":"action","params":{"action":"randomNumber"},"messageId":%d}' % n
        )
        for n in range(count)
    ]
    opened = len(transport.writes)
    for n, frame in enumerate(frames):
        transport.protocol.data_received(frame)
        await _until(lambda n=n: len(transport.writes) >= opened + n + 1)
    if b'"randomNumber"' not in transport.writes[-1]:
        raise RuntimeError(f"not a randomNumber reply: {transport.writes[-1][:200]!r}")


async def http_requests(bench: Bench, count: int, path: str = "/api/randomNumber") -> None:
    """``count`` ``GET path`` on one keep-alive connection, each to its response."""
    transport = bench.connection()
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1:8080"]
    lines += [f"{name}: {value}" for name, value in BROWSER_HEADERS]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    for n in range(count):
        transport.protocol.data_received(request)
        await _until(lambda n=n: len(transport.writes) >= n + 1)
    if not transport.writes[-1].startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"not a 200: {transport.writes[-1][:200]!r}")


async def status_requests(bench: Bench, count: int) -> None:
    """``count`` ``GET /api/status`` on one keep-alive connection."""
    await http_requests(bench, count, "/api/status")


OPERATIONS = {
    "upgrade": upgrades,
    "rpc": round_trips,
    "http": http_requests,
    "status": status_requests,
}


async def measure(operation: str, count: int, profile: bool, log_level: str) -> str:
    bench = Bench(log_level)
    # as server.py does, into a file (as stderr usually is under a service manager)
    log_file = tempfile.TemporaryFile("w")  # noqa: SIM115  # closed below
    configure_logging(log_level, stream=log_file)
    await bench.app.start()
    try:
        run = OPERATIONS[operation]
        await run(bench, max(10, count // 10))  # warm up: first-use allocations, caches
        profiler = cProfile.Profile() if profile else None
        started = time.process_time()
        if profiler is not None:
            profiler.enable()
        await run(bench, count)
        if profiler is not None:
            profiler.disable()
        spent = time.process_time() - started
    finally:
        await bench.app.stop()
        logging.shutdown()
        log_file.close()
    text = f"{operation}: {count} in one process, {1e6 * spent / count:.1f} µs CPU each"
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        text += " (under cProfile, which inflates it)\n" + out.getvalue()
    return text


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench inproc", description=__doc__.split("\n")[0]
    )
    parser.add_argument("operation", choices=sorted(OPERATIONS))
    parser.add_argument("-n", "--count", type=int, default=5000)
    parser.add_argument("--profile", action="store_true", help="add cProfile's top functions")
    parser.add_argument(
        "--log-level",
        choices=["warning", "info"],
        default="warning",
        help="general.logLevel (info: one access line per request and socket, to a file)",
    )
    args = parser.parse_args(argv)
    try:
        from uvloop import run
    except ImportError:
        run = asyncio.run
    count = max(1, min(args.count, 100_000))
    print(run(measure(args.operation, count, args.profile, args.log_level)))
