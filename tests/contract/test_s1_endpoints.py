"""PROTOCOL.md §1 from outside: where actions, files, the socket and the generated client answer
by default and when their config keys move them, and which port the server takes."""

from __future__ import annotations

import contextlib
import re
import socket

import pytest
from testkit import ROOT, TIMEOUT, Server, deep_merge, free_port, http_request, open_client, running
from websockets.asyncio.client import connect as websockets_connect
from websockets.exceptions import InvalidStatus

from .support import OPTIONS, running_server

ROOT_FILES = ("index.html", "chat.html")


def get(server: Server, path: str, method: str = "GET", body: str | None = None):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    return http_request(server, method, path, body, headers)


# --- HTTP actions ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
def test_s1_http_actions_answer_every_method_at_api_action(server, method):
    response = get(server, "/api/echo?hello=world", method)
    assert response.status == 200
    assert (response.json()["action"], response.json()["hello"]) == ("echo", "world")


def test_s1_http_actions_answer_at_api_query_action(server):
    response = get(server, "/api?action=echo&hello=query")
    assert response.status == 200
    assert (response.json()["action"], response.json()["hello"]) == ("echo", "query")


def test_s1_urlPathForActions_moves_the_actions(renamed):
    assert get(renamed, "/act/echo?hello=moved").json()["hello"] == "moved"
    assert get(renamed, "/act?action=echo&hello=q").json()["hello"] == "q"
    assert get(renamed, "/api/echo").status == 404  # /api is a (missing) file there


# --- static files ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ROOT_FILES)
def test_s1_static_files_answer_at_public_path(server, name):
    response = get(server, f"/public/{name}")
    assert response.status == 200
    assert response.body == (ROOT / "public" / name).read_bytes()


def test_s1_root_serves_public_index(server):
    response = get(server, "/")
    assert response.status == 200
    assert response.body == (ROOT / "public" / "index.html").read_bytes()


@pytest.mark.parametrize("name", ROOT_FILES)
def test_s1_any_other_path_serves_public_too(server, name):
    response = get(server, f"/{name}")
    assert response.status == 200
    assert response.body == (ROOT / "public" / name).read_bytes()


def test_s1_urlPathForFiles_and_paths_public_move_the_files(renamed, site):
    for path in ("/static/hello.html", "/hello.html"):
        response = get(renamed, path)
        assert (response.status, response.body) == (200, site.FILES["hello.html"])
    assert get(renamed, "/").body == site.FILES["index.html"]
    assert get(renamed, "/public/hello.html").status == 404


# --- the socket --------------------------------------------------------------------------------


async def test_s1_socket_answers_at_primus(server, connect):
    client = await connect(server)
    assert (await client.request("ping"))["status"] == "OK"
    assert client.ws.request.path == "/primus"


async def test_s1_socket_takes_an_optional_sessionID_query(server, connect):
    client = await connect(server, query="?sessionID=contract-s1-query")
    assert (await client.details())["fingerprint"] == "contract-s1-query"


async def test_s1_pathname_moves_the_socket(renamed, connect):
    client = await connect(renamed)
    assert client.ws.request.path == "/sock"
    assert (await client.request("ping"))["status"] == "OK"
    with pytest.raises(InvalidStatus):
        await websockets_connect(f"ws://127.0.0.1:{renamed.port}/primus", open_timeout=TIMEOUT)


# --- the generated client ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["actionheroClient.js", "actionheroClient.min.js"])
def test_s1_generated_client_answers_at_public_javascript(server, name):
    response = get(server, f"/public/javascript/{name}")
    assert response.status == 200
    assert b"ActionheroClient" in response.body
    assert "javascript" in response.headers["Content-Type"]


def test_s1_clientJsPath_and_clientJsName_move_the_generated_client(renamed, site):
    full, minified = (
        get(renamed, "/static/gen/myClient.js"),
        get(renamed, "/static/gen/myClient.min.js"),
    )
    assert (full.status, minified.status) == (200, 200)
    assert b"ActionheroClient" in full.body and b"ActionheroClient" in minified.body
    assert len(minified.body) < len(full.body)
    assert (site.public / "gen" / "myClient.js").read_bytes() == full.body
    assert get(renamed, "/static/javascript/actionheroClient.js").status == 404


# --- the port ----------------------------------------------------------------------------------


def _listening(port: int) -> bool:
    with contextlib.closing(socket.socket()) as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def test_s1_port_flag_overrides_servers_web_port(tmp_path):
    configured = free_port()
    options = deep_merge(OPTIONS, {"servers": {"web": {"port": configured}}})
    with running(Server("flag", tmp_path, options)) as flagged:
        client = await open_client(flagged)
        await client.close()
        assert flagged.port != configured and not _listening(configured)


async def test_s1_PORT_environment_variable_overrides_servers_web_port(tmp_path):
    configured = free_port()
    options = deep_merge(OPTIONS, {"servers": {"web": {"port": configured}}})
    with running(Server("env", tmp_path, options, port_from_env=True)) as from_env:
        client = await open_client(from_env)
        await client.close()
        assert from_env.port != configured and not _listening(configured)


# --- the environment -------------------------------------------------------------------------

REF = re.compile(r"^internal error \(ref \w+\)$")


@pytest.mark.server_errors("a bug on purpose")
async def test_s1_environment_defaults_to_development(tmp_path_factory):
    # development's own config (config/development.yaml) gives defaultRoom presence and history;
    # and development shows an unexpected exception's text (exposeErrors, PROTOCOL.md §3)
    with running_server(tmp_path_factory, "default-env", {}, environment=None) as development:
        client = await open_client(development)
        try:
            await client.join("defaultRoom")
            assert (await client.next(lambda f: f.get("context") == "presence"))["event"] == "join"
            await client.say("defaultRoom", "numbered")
            assert (await client.next(lambda f: f.get("context") == "user"))["offset"] >= 1
            assert (await client.action("contractRaise", kind="RuntimeError"))["error"] == (
                "a bug on purpose"
            )
        finally:
            await client.close()


@pytest.mark.server_errors("a bug on purpose")
@pytest.mark.parametrize("from_env", [False, True], ids=["--env", "SQUALL_ENV"])
async def test_s1_env_flag_or_SQUALL_ENV_names_the_environment(tmp_path_factory, from_env):
    # production hides an unexpected exception's text (exposeErrors false, PROTOCOL.md §3)
    with running_server(
        tmp_path_factory, "production", {}, environment="production", environment_from_env=from_env
    ) as production:
        client = await open_client(production)
        try:
            reply = await client.action("contractRaise", kind="RuntimeError")
            assert REF.match(reply["error"]), reply
        finally:
            await client.close()
