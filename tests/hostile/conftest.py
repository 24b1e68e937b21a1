"""Fixtures of the hostile tier: the shared ``main`` server, per-module servers through
``running_server``, and two checks after every test: no stray ERROR in any server log, and
every WebSocket peer the test opened is closed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest
from testkit import SERVER_ERRORS_MARKER, fail_on_stray_errors

from .support import Peer, Server

#: The shared server: short timeouts so hangs and slow clients show within a test's time,
#: the default maxMessageSize (1 MiB), a small outbound buffer bound, permessage-deflate on offer.
MAIN_OPTIONS = {
    "general": {"actionTimeout": 1500, "blockedLoopWarning": 1000},
    "servers": {
        "web": {"idleConnectionTimeout": 1000},
        "websocket": {
            "server": {
                "maxBufferedBytes": 1048576,
                "compression": True,
            }
        },
    },
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", SERVER_ERRORS_MARKER)


@pytest.fixture(autouse=True)
def no_stray_server_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test after which a server logged an ERROR or a traceback it did not expect."""
    with fail_on_stray_errors(request, lambda: Server.started):
        yield


@pytest.fixture(autouse=True)
async def close_peers() -> AsyncIterator[None]:
    """Every WebSocket peer a test opened is closed after it, whatever state it is in."""
    yield
    opened, Peer.opened[:] = list(Peer.opened), []
    for peer in opened:
        with contextlib.suppress(Exception):
            peer.reset()
        if peer._reader_task is not None:
            await asyncio.gather(peer._reader_task, return_exceptions=True)


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
def main(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The server most hostile tests share (MAIN_OPTIONS over the tier's base options)."""
    with running_server(tmp_path_factory, "main", MAIN_OPTIONS) as server:
        yield server
