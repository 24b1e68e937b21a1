"""Fixtures of the hostile tier: the shared ``main`` server, per-module servers through
``running_server``, and two checks after every test: no stray ERROR in any server log, and
every WebSocket peer the test opened is closed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest

from .support import Peer, Server, error_records

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
    config.addinivalue_line(
        "markers",
        "server_errors(*texts): the test makes a server log ERROR records mentioning these texts",
    )


@pytest.fixture(autouse=True)
def no_stray_server_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test after which a server logged an ERROR or a traceback it did not expect;
    expected ones are declared with ``@pytest.mark.server_errors(text)``."""
    allowed = tuple(t for mark in request.node.iter_markers("server_errors") for t in mark.args)
    offsets = {server: server.log_size() for server in Server.started}
    yield
    stray = {
        server.name: found
        for server in Server.started
        if (found := error_records(server.log_text(offsets.get(server, 0)), allowed))
    }
    assert not stray, f"unexpected server errors: {stray}"


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
