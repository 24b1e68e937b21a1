"""Fixtures of the hostile tier: the shared ``main`` server, and every WebSocket peer a test
opened closed after it, whatever state it is in. ``running_server`` (support.py) starts a
module's own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from testkit import Peer, Server

from .support import running_server

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


@pytest.fixture(autouse=True)
async def close_peers() -> AsyncIterator[None]:
    yield
    await Peer.close_all()


@pytest.fixture(scope="session")
def main(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The server most hostile tests share (MAIN_OPTIONS over the tier's base options)."""
    with running_server(tmp_path_factory, "main", MAIN_OPTIONS) as server:
        yield server
