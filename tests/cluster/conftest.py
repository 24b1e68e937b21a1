"""Fixtures: one ``redis-server`` and one three-server cluster shared by the tests that leave
both intact, fresh ones for the tests that kill, restart or fork, and clients that know their
connection id.

Shared-cluster tests never disturb each other: each works in rooms of its own (``unique``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from testkit import Client, Server, start_all, stop_all, unique

from .support import RedisServer, broker_ok, cluster_options


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Server]]:
    """Servers a, b and c of the cluster ``shared`` on the session's Redis."""
    workdir = tmp_path_factory.mktemp("shared")
    options = cluster_options(redis_server.url, "shared")
    servers = [Server(name, workdir, options) for name in ("a", "b", "c")]
    start_all(servers, broker_ok)
    try:
        yield servers
    finally:
        stop_all(servers)


@pytest.fixture
def make_redis(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """``make_redis(start=True, password=None, persistent=False)``: a Redis for one test, which
    it may stop and start again (same port); stopped after the test, after its servers."""
    made: list[RedisServer] = []

    def _make(start: bool = True, **options: Any) -> RedisServer:
        made.append(RedisServer(tmp_path, **options))
        return made[-1].start() if start else made[-1]

    yield _make
    for server in made:
        server.stop()


@pytest.fixture
def own_redis(make_redis: Callable[..., RedisServer]) -> RedisServer:
    """A Redis for one test, which it may stop and start again (same port)."""
    return make_redis()


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., list[Server]]]:
    """``launch(redis_url, names, workers=1, start=True, extra=None, cluster=None)``: servers
    of a cluster of their own (a fresh name unless ``cluster`` names one), started at once
    (each in its cluster), stopped after the test whatever happened."""
    launched: list[Server] = []

    def _launch(
        redis_url: str | None,
        names: tuple[str, ...],
        workers: int = 1,
        start: bool = True,
        extra: dict[str, Any] | None = None,
        cluster: str | None = None,
    ) -> list[Server]:
        options = cluster_options(redis_url, cluster or unique("own"), extra)
        servers = [Server(name, tmp_path, options, workers=workers) for name in names]
        launched.extend(servers)
        return start_all(servers, broker_ok if redis_url else None) if start else servers

    yield _launch
    stop_all(launched)


@pytest.fixture
def connect(connect: Callable[..., Any]) -> Callable[[Server], Any]:
    """``await connect(server)``: a client (welcome taken) that knows its connection id."""

    async def _connect(server: Server, **options: Any) -> Client:
        client = await connect(server, **options)
        client.id = (await client.details())["id"]
        return client

    return _connect
