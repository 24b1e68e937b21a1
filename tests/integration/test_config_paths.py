"""Every path of PROTOCOL.md §1 follows its config key: urlPathForActions, urlPathForFiles,
websocket pathname, clientJsPath and clientJsName."""

from __future__ import annotations

import pytest
from testkit import http_request, open_client
from websockets.exceptions import InvalidStatus

from .support import PUBLIC, running_server

NOT_FOUND_BODY = b"That file is not found"


@pytest.fixture(scope="module")
def renamed(tmp_path_factory):
    options = {
        "servers": {
            "web": {"urlPathForActions": "rpc", "urlPathForFiles": "static"},
            "websocket": {
                "clientJsPath": "js/",
                "clientJsName": "squallClient",
                "server": {"pathname": "/socket"},
            },
        }
    }
    with running_server(tmp_path_factory, "renamed", options) as server:
        yield server


def test_http_actions_answer_at_urlPathForActions(renamed):
    response = http_request(renamed, "GET", "/rpc/echo?x=1")
    assert (response.status, response.json()["x"]) == (200, "1")
    assert http_request(renamed, "GET", "/rpc?action=echo&x=2").json()["x"] == "2"


def test_http_old_action_path_is_just_a_missing_file(renamed):
    response = http_request(renamed, "GET", "/api/status")
    assert (response.status, response.body) == (404, NOT_FOUND_BODY)


def test_static_files_answer_at_urlPathForFiles(renamed):
    response = http_request(renamed, "GET", "/static/hello.txt")
    assert (response.status, response.body) == (200, (PUBLIC / "hello.txt").read_bytes())


def test_static_generated_client_follows_clientJsPath_and_name(renamed):
    response = http_request(renamed, "GET", "/static/js/squallClient.js")
    assert (response.status, b"ActionheroClient" in response.body) == (200, True)
    assert http_request(renamed, "GET", "/static/js/squallClient.min.js").status == 200


async def test_socket_answers_at_pathname(renamed, connect):
    client = await connect(renamed)
    assert (await client.request("ping"))["status"] == "OK"


async def test_socket_old_pathname_is_not_a_socket(renamed):
    renamed.ws_path = "/primus"
    try:
        with pytest.raises(InvalidStatus):
            await open_client(renamed)
    finally:
        renamed.ws_path = "/socket"
