"""Fan-out through Redis with one and with two Squall processes (members split across them).

Everything here is optional on purpose: without redis-server, or while Squall cannot run with
Redis, the scenario raises ClusterUnavailable with the reason and the report shows "n/a: reason".
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import scenarios, servers
from bench.workers import Target


class ClusterUnavailable(RuntimeError):
    """The cluster scenario cannot run here; str() is the reason for the report."""


@contextmanager
def redis_server(run_dir: Path) -> Iterator[str]:
    """A throw-away redis-server on a free loopback port, no persistence; yields its URL."""
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        raise ClusterUnavailable("redis-server is not installed")
    port = servers.free_port()
    log = run_dir / f"redis-{port}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        for _ in range(100):
            ping = subprocess.run(
                ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True
            )
            if ping.stdout.strip() == "PONG":
                break
            time.sleep(0.05)
        else:
            raise ClusterUnavailable(f"redis-server did not start: {servers.tail(log)}")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def fanout(
    run_dir: Path, config: Path, processes: int, members: int, messages: int, procs: int = 1
) -> dict[str, Any]:
    """Start ``processes`` Squall servers on one fresh Redis and run the fan-out across them.

    The sender sits on the first server; members alternate between servers, so with two
    processes half of every delivery crosses Redis.
    """
    with redis_server(run_dir) as url:
        started: list[servers.Server] = []
        try:
            for _ in range(processes):
                try:
                    started.append(
                        servers.start_squall(
                            servers.free_port(), run_dir, config, {"SQUALL_REDIS_URL": url}
                        )
                    )
                except servers.ServerError as exc:
                    raise ClusterUnavailable(f"Squall does not start with Redis ({exc})") from None
            target = Target("127.0.0.1", tuple(s.port for s in started), "/primus", "plain")
            pids = [pid for s in started for pid in s.pids]
            return scenarios.fanout(target, pids, members, messages, procs=procs)
        finally:
            for server in started:
                server.stop()
