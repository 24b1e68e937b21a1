"""HTTP keep-alive load: ``wrk`` when installed, else a small asyncio generator of our own.

wrk is the usual instrument and costs little CPU per request (C, epoll), which matters on a 2-core
machine where the generator shares cores with the server (``apt-get install wrk``). The fallback
keeps the scenario usable without it; its absolute rates are lower, but the same-run ratios stay
comparable. Every request carries the headers a browser sends with a ``fetch()`` (a parser that
only ever sees ``Host`` is measured on a request nobody sends).
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

#: What Chrome sends with ``fetch(url)`` from a page of the same origin, besides ``Host``.
BROWSER_HEADERS = (
    ("Connection", "keep-alive"),
    ("sec-ch-ua", '"Chromium";v="131", "Not_A Brand";v="24"'),
    ("sec-ch-ua-mobile", "?0"),
    ("sec-ch-ua-platform", '"Linux"'),
    (
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
    ),
    ("Accept", "*/*"),
    ("Sec-Fetch-Site", "same-origin"),
    ("Sec-Fetch-Mode", "cors"),
    ("Sec-Fetch-Dest", "empty"),
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    ("Accept-Language", "en-US,en;q=0.9"),
)


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
    for name, value in BROWSER_HEADERS:
        cmd += ["-H", f"{name}: {value}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip()[-300:]}")
    return parse_wrk(done.stdout)


async def _own(host: str, port: int, path: str, connections: int, duration: float) -> dict:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in BROWSER_HEADERS]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
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
