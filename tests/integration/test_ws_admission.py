"""Who gets a socket: origins (403), authorization (401 + JSON), the connection cap (503)
(PROTOCOL.md §6). What closes one (1009, 4001...): test_ws_conformance.py."""

from __future__ import annotations

import json

import pytest
from testkit import open_client
from websockets.exceptions import InvalidStatus

from .support import running_server

ALLOWED = "http://allowed.example"
GOOD = {"X-Test-Token": "good"}
MAX_CONNECTIONS = 2


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A server with an origin list, an async authorization function, a small frame limit and
    a cap of two sockets."""
    options = {
        "servers": {
            "websocket": {
                "server": {
                    "origins": [ALLOWED],
                    "authorization": "tests.integration.authz.admit",
                    "maxConnections": MAX_CONNECTIONS,
                }
            }
        }
    }
    with running_server(tmp_path_factory, "guarded", options) as server:
        yield server


async def refused(server, **options) -> tuple[int, bytes]:
    """Status and body of an upgrade the server must refuse."""
    with pytest.raises(InvalidStatus) as caught:
        await open_client(server, **options)
    return caught.value.response.status_code, caught.value.response.body


async def test_upgrade_allowed_origin_with_authorization_is_admitted(guarded, connect):
    client = await connect(guarded, origin=ALLOWED, headers=GOOD)
    assert (await client.request("ping"))["status"] == "OK"


async def test_upgrade_disallowed_origin_is_403(guarded):
    status, _ = await refused(guarded, origin="http://evil.example", headers=GOOD)
    assert status == 403


@pytest.mark.parametrize("token", [None, "bad"])
async def test_upgrade_disallowed_origin_is_403_whatever_the_authorization(guarded, token):
    headers = {"X-Test-Token": token} if token else {}
    status, _ = await refused(guarded, origin="http://evil.example", headers=headers)
    assert status == 403


async def test_upgrade_unauthorized_is_401_with_json(guarded):
    status, body = await refused(guarded, origin=ALLOWED)
    assert (status, json.loads(body)) == (401, {"error": "unauthorized"})


async def test_upgrade_authorization_exception_is_401_with_its_message(guarded):
    status, body = await refused(guarded, origin=ALLOWED, headers={"X-Test-Token": "bad"})
    assert (status, json.loads(body)) == (401, {"error": "token rejected"})


async def test_upgrade_authorization_exception_without_message_is_401_unauthorized(guarded):
    status, body = await refused(guarded, origin=ALLOWED, headers={"X-Test-Token": "mute"})
    assert (status, json.loads(body)) == (401, {"error": "unauthorized"})


async def test_upgrade_past_maxConnections_is_503(guarded, connect):
    for _ in range(MAX_CONNECTIONS):
        await connect(guarded, origin=ALLOWED, headers=GOOD)
    status, _ = await refused(guarded, origin=ALLOWED, headers=GOOD)
    assert status == 503
