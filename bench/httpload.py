"""HTTP keep-alive load: ``wrk`` when installed, else a small asyncio generator of our own.

wrk is the usual instrument and costs little CPU per request (C, epoll), which matters on a 2-core
machine where the generator shares cores with the server. The fallback keeps the scenario usable
without it; its absolute rates are lower, but the same-run ratios stay comparable.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from typing import Any

from bench import procstat
from bench.limits import MAX_DURATION_S, clamp, require_loopback

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> dict[str, Any]:
    """requests, req/s, p50/p99 (ms) and error counts from ``wrk --latency`` output."""
    requests = re.search(r"(\d+) requests in", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not requests or not rate:
        raise RuntimeError(f"unexpected wrk output: {output[-300:]!r}")
    percentiles = dict(re.findall(r"^\s+(\d+)%\s+([\d.]+(?:us|ms|s))\s*$", output, re.M))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {
        "requests": int(requests.group(1)),
        "req_per_s": float(rate.group(1)),
        "p50_ms": _ms(percentiles["50"]) if "50" in percentiles else None,
        "p99_ms": _ms(percentiles["99"]) if "99" in percentiles else None,
        "errors": int(bad.group(1)) if bad else 0,
        "socket_errors": socket_errors.group(1).strip() if socket_errors else "",
    }


def _wrk(url: str, connections: int, duration: float) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration:.0f}s", "--latency", url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip()[-300:]}")
    return parse_wrk(done.stdout)


async def _own(host: str, port: int, path: str, connections: int, duration: float) -> dict:
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    lat: list[float] = []
    errors = 0
    end = time.perf_counter() + duration

    async def client() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                lat.append(time.perf_counter() - t0)
                if not head.startswith((b"HTTP/1.1 2", b"HTTP/1.1 3")):
                    errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    lat.sort()
    elapsed = time.perf_counter() - started
    return {
        "requests": len(lat),
        "req_per_s": len(lat) / elapsed,
        "p50_ms": lat[len(lat) // 2] * 1000 if lat else None,
        "p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else None,
        "errors": errors,
        "socket_errors": "",
    }


def http(
    host: str, port: int, path: str, pids: list[int], connections: int = 50, duration: float = 8.0
) -> dict[str, Any]:
    """GET ``path`` over ``connections`` keep-alive connections for ``duration`` s.

    Adds the server's CPU per request (summed over ``pids``) and which tool measured.
    """
    host = require_loopback(host)
    duration = clamp(duration, 1, MAX_DURATION_S)
    connections = int(clamp(connections, 1, 1000))
    cpu0 = procstat.cpu_seconds(pids)
    if shutil.which("wrk"):
        result = _wrk(f"http://{host}:{port}{path}", connections, duration)
        result["tool"] = "wrk"
    else:
        result = asyncio.run(_own(host, port, path, connections, duration))
        result["tool"] = "bench.httpload"
    cpu1 = procstat.cpu_seconds(pids)
    if pids and result["requests"]:
        result["cpu_us_per_req"] = 1e6 * (cpu1 - cpu0) / result["requests"]
    return result
