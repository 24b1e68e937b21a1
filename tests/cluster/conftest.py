"""Fixtures: one ``redis-server`` and one three-server cluster shared by the tests that leave
both intact, fresh ones for the tests that kill, restart or fork, and clients always closed.

Shared-cluster tests never disturb each other: each works in rooms of its own (``unique``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from testkit import SERVER_ERRORS_MARKER, fail_on_stray_errors

from .support import (
    Client,
    RedisServer,
    SquallServer,
    cluster_options,
    open_client,
    start_all,
    stop_all,
    unique,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", SERVER_ERRORS_MARKER)


@pytest.fixture(autouse=True)
def no_stray_server_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test after which a server logged an ERROR or a traceback it did not expect
    (expected ones: Redis stopped on purpose, a worker killed)."""
    with fail_on_stray_errors(request, lambda: SquallServer.started):
        yield


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
) -> Iterator[list[SquallServer]]:
    """Servers a, b and c of the cluster ``shared`` on the session's Redis."""
    workdir = tmp_path_factory.mktemp("shared")
    options = cluster_options(redis_server.url, "shared")
    servers = [SquallServer(name, workdir, options) for name in ("a", "b", "c")]
    start_all(servers)
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
def launch(tmp_path: Path) -> Iterator[Callable[..., list[SquallServer]]]:
    """``launch(redis_url, names, workers=1, start=True)``: servers of a cluster of their own
    (a fresh cluster name), started at once, stopped after the test whatever happened."""
    launched: list[SquallServer] = []

    def _launch(
        redis_url: str | None,
        names: tuple[str, ...],
        workers: int = 1,
        start: bool = True,
        extra: dict[str, Any] | None = None,
    ) -> list[SquallServer]:
        options = cluster_options(redis_url, unique("own"), extra)
        servers = [SquallServer(name, tmp_path, options, workers) for name in names]
        launched.extend(servers)
        return start_all(servers) if start else servers

    yield _launch
    stop_all(launched)


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[SquallServer], Any]]:
    """``await connect(server)``: a client (welcome taken, id known), closed after the test."""
    opened: list[Client] = []

    async def _connect(server: SquallServer) -> Client:
        client = await open_client(server)
        opened.append(client)
        return client

    yield _connect
    for client in opened:
        with contextlib.suppress(Exception):
            await client.close()
