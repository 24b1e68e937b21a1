"""squall.testing agrees with a real server: the same calls, made once through the in-process
harness and once over HTTP and a real WebSocket to ``server.py`` with the same config, give the
same answers (statuses, replies, pushed frames, close codes), volatile values (ids, times,
ports) aside. A user's test that passes on the harness therefore says how the server behaves."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from testkit import ROOT, Client, Server, http_request, is_reply, open_client

from squall.testing import Harness

from .support import running_server

#: Values that differ between any two runs, whatever serves them (connection ids are replaced
#: by the name of their socket instead, so who sent and who is a member still count).
VOLATILE = {"fingerprint", "remotePort", "connectedAt", "sentAt", "pong", "joinedAt"}


@pytest.fixture(autouse=True)
def event_log(tmp_path, monkeypatch):
    """The in-process app's test middleware writes where the server's does (support.Server)."""
    monkeypatch.setenv("SQUALL_TEST_EVENT_LOG", str(tmp_path / "events"))


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory):
    with running_server(tmp_path_factory, "harness-agreement", {}) as server:
        yield server


def normalized(value: Any, names: dict[str, str]) -> Any:
    """``value`` with connection ids replaced by ``names`` and VOLATILE values by a mark."""
    if isinstance(value, dict):
        return {
            names.get(key, key): "<volatile>" if key in VOLATILE else normalized(item, names)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [normalized(item, names) for item in value]
    return names.get(value, value) if isinstance(value, str) else value


# --- the two drivers: one interface, two ways in -------------------------------------------


class HarnessDriver:
    def __init__(self, harness: Harness) -> None:
        self.harness = harness

    async def http(self, action: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        reply = await self.harness.run(action, params)
        return reply.status, dict(reply)

    async def socket(self) -> HarnessSocket:
        socket = HarnessSocket(await self.harness.connect())
        socket.id = (await socket.request("detailsView"))["data"]["id"]
        return socket


class HarnessSocket:
    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.id = ""

    async def request(self, event: str, **fields: Any) -> dict[str, Any]:
        return await self.socket.request(event, **fields)

    async def pushed(self, match: Callable[[dict], bool]) -> dict[str, Any]:
        return await self.socket.next(match)

    async def quit(self) -> int | None:
        await self.socket.quit()
        return self.socket.close_code


class ServerDriver:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.clients: list[Client] = []

    async def http(self, action: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        response = await asyncio.to_thread(
            http_request,
            self.server,
            "POST",
            f"/api/{action}",
            json.dumps(params),
            {"Content-Type": "application/json"},
        )
        body = response.json()
        body.pop("serverInformation", None)
        body.pop("requesterInformation", None)
        return response.status, body

    async def socket(self) -> ServerSocket:
        client = await open_client(self.server, await_welcome=False)
        self.clients.append(client)
        socket = ServerSocket(client)
        socket.id = (await socket.request("detailsView"))["data"]["id"]
        return socket


class ServerSocket:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.id = ""

    async def request(self, event: str, **fields: Any) -> dict[str, Any]:
        return await self.client.request(event, **fields)

    async def pushed(self, match: Callable[[dict], bool]) -> dict[str, Any]:
        return await self.client.next(lambda frame: not is_reply(frame) and match(frame))

    async def quit(self) -> int | None:
        await self.client.send({"event": "quit", "messageId": self.client.new_id()})
        code, _ = await self.client.wait_closed()
        return code


# --- the calls ------------------------------------------------------------------------------

HTTP_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("echo", {"hello": "world", "n": 3, "nested": {"list": [1, 2]}}),
    ("randomNumber", {}),
    ("nope", {}),
    ("createChatRoom", {}),
    ("inputsTest", {"needed": "x", "even": "3"}),
    ("inputsTest", {"needed": "x", "word": "Loud"}),
    ("inputsTest", {"needed": "x", "answer": "41"}),
    ("inputsTest", {"needed": "x", "even": "4", "word": "calm", "answer": "42"}),
    ("versionTest", {"apiVersion": 1}),
    ("versionTest", {"apiVersion": 9}),
    ("forbiddenTest", {}),
    ("failTest", {}),
    ("syncTest", {"duration": 1}),
    ("docTest", {"x": 1}),
]


async def http_answers(driver: Any) -> list[Any]:
    answers = []
    for action, params in HTTP_CALLS:
        status, body = await driver.http(action, params)
        if action == "randomNumber":
            body = sorted(body)  # the number itself is random: its fields are what must agree
        answers.append((action, status, body))
    return answers


async def socket_answers(driver: Any) -> list[Any]:
    alice, bob = await driver.socket(), await driver.socket()
    names = {alice.id: "<alice>", bob.id: "<bob>"}
    answers: list[Any] = []

    async def note(step: Awaitable[Any]) -> None:
        answers.append(normalized(await step, names))

    def user(frame: dict) -> bool:
        return frame.get("context") == "user"

    await note(alice.pushed(lambda frame: frame.get("context") == "api"))  # the welcome
    await note(alice.request("roomAdd", room="defaultRoom"))
    await note(bob.request("roomAdd", room="defaultRoom"))
    await note(alice.request("roomAdd", room="defaultRoom"))
    await note(alice.request("roomAdd", room="no-such-room"))
    await note(alice.request("say", room="defaultRoom", message={"text": "hi", "n": 1}))
    await note(bob.pushed(user))
    await note(alice.pushed(user))
    await note(alice.request("say", room="defaultRoom"))
    await note(bob.request("roomView", room="defaultRoom"))
    await note(alice.request("detailsView"))
    await note(alice.request("file", file="hello.txt"))
    await note(alice.request("file", file="../secret.txt"))
    await note(alice.request("documentation"))
    await note(alice.request("ping"))
    await note(alice.request("shout"))
    frames = [{"context": "alert", "n": 1}, {"n": 2}]
    await note(alice.request("action", params={"action": "pushTest", "frames": frames}))
    await note(alice.pushed(lambda frame: frame.get("context") == "alert"))
    await note(alice.pushed(lambda frame: frame.get("n") == 2))
    await note(alice.request("action", params={"action": "inputsTest"}))
    await note(alice.request("action", params={"action": "versionTest", "apiVersion": 1}))
    await note(bob.request("roomLeave", room="defaultRoom"))
    await note(bob.request("roomLeave", room="defaultRoom"))
    answers.append(await alice.quit())
    return answers


@pytest.mark.server_errors("this action fails on purpose")
async def test_http_calls_answer_alike(real_server):
    async with Harness(ROOT, config_files=[real_server.config_path]) as harness:
        in_process = await http_answers(HarnessDriver(harness))
    over_http = await http_answers(ServerDriver(real_server))

    assert in_process == over_http
    statuses = {action: status for action, status, _ in over_http}
    assert statuses["echo"] == 200
    assert statuses["nope"] == 404
    assert statuses["createChatRoom"] == 422
    assert statuses["failTest"] == 500


async def test_socket_verbs_and_pushes_answer_alike(real_server):
    async with Harness(ROOT, config_files=[real_server.config_path]) as harness:
        in_process = await socket_answers(HarnessDriver(harness))
    driver = ServerDriver(real_server)
    try:
        over_the_wire = await socket_answers(driver)
    finally:
        for client in driver.clients:
            await client.close()

    assert in_process == over_the_wire
    assert over_the_wire[-1] == 4000  # quit
