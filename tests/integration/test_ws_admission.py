"""Who gets a socket and what closes it: origins (403), authorization (401 + JSON), connection
middleware (4001), maxMessageSize (1009) (PROTOCOL.md §6)."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import InvalidStatus

from .conftest import running_server
from .support import TIMEOUT, open_client

ALLOWED = "http://allowed.example"
GOOD = {"X-Test-Token": "good"}
MAX_SIZE = 4096
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
                    "maxMessageSize": MAX_SIZE,
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


async def test_upgrade_without_compression_negotiates_none(guarded, connect):
    client = await connect(guarded, origin=ALLOWED, headers=GOOD)
    assert client.ws.response.headers.get("Sec-WebSocket-Extensions") is None


def padded_echo(size: int) -> str:
    """An echo action frame of exactly ``size`` bytes."""
    frame = {"event": "action", "messageId": 1, "params": {"action": "echo", "pad": ""}}
    frame["params"]["pad"] = "x" * (size - len(json.dumps(frame)))
    text = json.dumps(frame)
    assert len(text.encode()) == size
    return text


async def test_frame_at_max_size_is_accepted(guarded, connect):
    client = await connect(guarded, origin=ALLOWED, headers=GOOD)
    await client.send_raw(padded_echo(MAX_SIZE))
    reply = await client.reply(1)
    assert reply["pad"] == "x" * len(reply["pad"])
    assert "error" not in reply


async def test_frame_over_max_size_closes_1009(guarded, connect):
    client = await connect(guarded, origin=ALLOWED, headers=GOOD)
    await client.send_raw(padded_echo(MAX_SIZE + 1))
    code, _ = await client.wait_closed()
    assert code == 1009


async def test_connection_middleware_refusal_closes_4001_with_reason(server, connect):
    client = await connect(server, query="?sessionID=reject-me", await_welcome=False)
    # twice the server's close grace, so a lost close frame shows as 1006, not as a timeout
    assert await client.wait_closed(timeout=TIMEOUT * 2) == (4001, "you are not welcome here")
