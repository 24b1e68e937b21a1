"""What only the cluster tier needs: a real ``redis-server``, the options of servers that meet
in it (the test actions of tests/cluster/actions, a short lease), and ways to reach each worker
of ``--workers``. The server processes and clients are tests/testkit.py's.

Counting "exactly once" without sleeping: Redis delivers the messages one publisher sends in
the order it sent them, on every channel, to each subscriber connection; a server writes what
its subscriber hears to its sockets in that order. So once a client sees a *fence* (a message
sent after the ones under test, by the same server), every copy of those has arrived too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from testkit import BOOT_TIMEOUT, POLL, TIMEOUT, Client, Server, eventually, free_port, stop_process

from squall.supervisor import MIN_LIFETIME

#: The drop-in folders of every cluster-tier server: the shipped actions and the test probes.
ACTIONS = ["actions", "tests/probes", "tests/cluster/actions"]

#: Short enough that crash tests are fast, long enough for a loaded test machine.
LEASE_MS = 1500
CANARY_MS = 500


def broker_ok(status: dict[str, Any]) -> bool:
    """A server is in its cluster: ``Server.wait_ready(broker_ok)``."""
    return status.get("broker", {}).get("state") == "ok"


# --- Redis ----------------------------------------------------------------------------------


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError(
            "redis-server not found: install Debian's redis-server (./scripts/test does)"
        )
    return found


class RedisServer:
    """``redis-server`` on a free loopback port, restartable on that port: without persistence
    (a restart forgets everything) unless ``persistent`` (an append-only file, kept across a
    restart); with ``requirepass`` when given a ``password``."""

    def __init__(
        self, workdir: Path, password: str | None = None, persistent: bool = False
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.password = password
        self.persistent = persistent
        self.log_path = workdir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        credentials = f":{self.password}@" if self.password else ""
        return f"redis://{credentials}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        command = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--dir", str(self.workdir)]
        command += ["--appendonly", "yes" if self.persistent else "no"]
        if self.password:
            command += ["--requirepass", self.password]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited at boot:\n{self.log_path.read_text()}")
            with contextlib.suppress(redis.RedisError), self.client() as client:
                if client.ping():
                    return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server not ready in {BOOT_TIMEOUT}s")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=POLL)  # poll interval while booting; exits caught above

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, TIMEOUT)

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, socket_timeout=TIMEOUT
        )


# --- Squall ---------------------------------------------------------------------------------


def cluster_options(
    redis_url: str | None, cluster: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The YAML every cluster-tier server gets: our test actions, Redis, a short lease."""
    options: dict[str, Any] = {
        # info: the log of a failed test shows each server's start and shutdown steps
        "general": {
            "logLevel": "info",
            "paths": {"actions": ["actions", "tests/probes", "tests/cluster/actions"]},
        },
    }
    if redis_url is not None:
        options["redis"] = {
            "enabled": True,
            "url": redis_url,
            "clusterName": cluster,
            "leaseTimeout": LEASE_MS,
            "canaryInterval": CANARY_MS,
        }
    for key, value in (extra or {}).items():
        options[key] = {**options.get(key, {}), **value}
    return options


async def kill_worker_of(client: Client) -> int:
    """SIGKILL the ``--workers`` worker holding ``client``, once it is old enough not to count
    as a failed start (the supervisor then replaces it); its pid, after the socket closed."""
    pid = int((await client.action("status"))["id"].rpartition("-")[2])
    await eventually(
        lambda: client.action("status"),
        lambda status: status["uptime"] > MIN_LIFETIME * 1000,
        BOOT_TIMEOUT,
        "worker older than the supervisor's MIN_LIFETIME",
    )
    os.kill(pid, signal.SIGKILL)
    await client.wait_closed()
    return pid


async def one_client_per_worker(
    server: Server, connect: Callable[[Server], Any], workers: int = 2
) -> dict[str, Client]:
    """Connect until a client sits on each of the ``--workers`` (the kernel spreads connections
    over the workers listening; one may still be booting); ``{worker id: client}``. A client
    that lands on a worker already found is closed again."""
    by_worker: dict[str, Client] = {}
    deadline = time.monotonic() + BOOT_TIMEOUT
    while len(by_worker) < workers:
        if time.monotonic() > deadline:
            raise AssertionError(f"in {BOOT_TIMEOUT}s every connection went to {set(by_worker)}")
        client = await connect(server)
        worker = (await client.action("status"))["id"]
        if worker in by_worker:
            await client.close()
        else:
            by_worker[worker] = client
    return by_worker
