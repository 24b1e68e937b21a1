"""``python -m bench logcost``: what ``logLevel: info`` (one access line per request and per
socket) costs, against ``warning``, measured in the same run (issue 16).

Two Squall servers run side by side, each as the bench runs Squall (production environment,
the bench's override file), one with ``general.logLevel: warning`` and one with ``info``
(its log goes to a file, as stderr usually does under a service manager). Each repetition runs
the rpc and HTTP scenarios on both, in an order that alternates, and the table gives the
medians and the info/warning ratio. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench import httpload, scenarios, servers
from bench.workers import Target

#: (measurement, key in the scenario's result, higher is better)
ROWS = (
    ("WS action round trips/s, 50 clients", "rpc", "rt_per_s", True),
    ("server CPU µs per WS round trip", "rpc", "cpu_us_per_rt", False),
    ("HTTP GET /api/randomNumber req/s, 50 conns", "http", "req_per_s", True),
    ("server CPU µs per HTTP request", "http", "cpu_us_per_req", False),
)


def _config(run_dir: Path, level: str) -> Path:
    path = run_dir / f"squall-{level}.yaml"
    config = {
        "general": {"logLevel": level},
        "servers": {
            "web": {"bindIP": "127.0.0.1"},
            "websocket": {"server": {"pingInterval": 25000}},
        },
    }
    path.write_text(json.dumps(config))
    return path


def measure(server: servers.Server, rpc_s: float, http_s: float) -> dict[str, dict[str, Any]]:
    target = Target("127.0.0.1", (server.port,), "/primus", "plain")
    return {
        "rpc": scenarios.rpc(target, server.pids, 50, rpc_s),
        "http": httpload.http(
            "127.0.0.1", server.port, "/api/randomNumber", server.pids, 50, http_s
        ),
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench logcost", description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rpc-seconds", type=float, default=8.0)
    parser.add_argument("--http-seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    levels = ("warning", "info")
    found: dict[str, dict[str, list[float]]] = {level: {} for level in levels}
    with tempfile.TemporaryDirectory(prefix="squall-logcost-") as tmp:
        run_dir = Path(tmp)
        for rep in range(args.repeat):
            order = levels if rep % 2 == 0 else levels[::-1]
            for level in order:
                server = servers.start_squall(servers.free_port(), run_dir, _config(run_dir, level))
                try:
                    result = measure(server, args.rpc_seconds, args.http_seconds)
                finally:
                    server.stop()
                for _, scenario, key, _ in ROWS:
                    value = result[scenario].get(key)
                    if value is not None:
                        found[level].setdefault(f"{scenario}.{key}", []).append(value)
                print(f"rep {rep + 1} {level}: {json.dumps(result, default=str)}", flush=True)
    print()
    print("| measurement | logLevel warning | logLevel info | info / warning |")
    print("|---|---:|---:|---:|")
    for label, scenario, key, _higher in ROWS:
        warning = statistics.median(found["warning"][f"{scenario}.{key}"])
        info = statistics.median(found["info"][f"{scenario}.{key}"])
        print(f"| {label} | {warning:,.1f} | {info:,.1f} | {info / warning:.3f} |")
    print(f"\nMedians of {args.repeat} repetitions, the two servers measured alternately.")
