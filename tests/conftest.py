"""What every tier gets: the ``server_errors`` marker, the stray-error check after each test,
and ``connect``, a client factory whose clients are always closed (tests/testkit.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from testkit import SERVER_ERRORS_MARKER, Client, Server, fail_on_stray_errors, open_client


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", SERVER_ERRORS_MARKER)


@pytest.fixture(autouse=True)
def no_stray_server_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test after which a server logged an ERROR or a traceback it did not expect."""
    with fail_on_stray_errors(request):
        yield


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Any]]:
    """``await connect(server, **open_client_options)``; every client is closed afterwards."""
    opened: list[Client] = []

    async def _connect(target: Server, **options: Any) -> Client:
        client = await open_client(target, **options)
        opened.append(client)
        return client

    yield _connect
    for client in opened:
        with contextlib.suppress(Exception):
            await client.close()
