"""Fixtures: one shared server for the whole session, a fresh client of it, and every raw peer
a test opened closed after it. ``running_server`` (support.py) starts a module's own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from testkit import Client, Peer, Server

from .support import running_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The server most tests share: default options plus BASE_OPTIONS."""
    with running_server(tmp_path_factory, "shared", {}) as shared:
        yield shared


@pytest.fixture
async def client(server: Server, connect) -> Client:
    """A fresh client of the shared server, welcome frame already taken."""
    return await connect(server)


@pytest.fixture(autouse=True)
async def close_peers() -> AsyncIterator[None]:
    yield
    await Peer.close_all()
