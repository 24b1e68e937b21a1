"""Fixtures: one shared server for the whole session, a factory for clients that are always
closed, and ``running_server`` for modules that need their own options."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest
from testkit import SERVER_ERRORS_MARKER, fail_on_stray_errors

from .support import Client, Server, open_client


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", SERVER_ERRORS_MARKER)


@pytest.fixture(autouse=True)
def no_stray_server_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test after which a server logged an ERROR or a traceback it did not expect."""
    with fail_on_stray_errors(request, lambda: Server.started):
        yield


@contextlib.contextmanager
def running_server(
    tmp_path_factory: pytest.TempPathFactory, name: str, options: dict, **settings
) -> Iterator[Server]:
    server = Server(name, tmp_path_factory.mktemp(name), options, **settings)
    try:
        yield server.start()
    finally:
        server.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The server most tests share: default options plus BASE_OPTIONS."""
    with running_server(tmp_path_factory, "shared", {}) as shared:
        yield shared


@pytest.fixture
async def connect() -> AsyncIterator:
    """``await connect(server, **open_client_options)``; every client is closed afterwards."""
    opened: list[Client] = []

    async def _connect(target: Server, **options) -> Client:
        client = await open_client(target, **options)
        opened.append(client)
        return client

    yield _connect
    for client in opened:
        with contextlib.suppress(Exception):
            await client.close()


@pytest.fixture
async def client(server: Server, connect) -> Client:
    """A fresh client of the shared server, welcome frame already taken."""
    return await connect(server)
