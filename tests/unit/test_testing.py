"""squall.testing: the in-process harness users test their actions with. Each test boots a
project written to a temporary folder, as a user's own project would be."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from squall import action
from squall.errors import ActionLoadError
from squall.testing import Harness, Reply, SocketClosed

from .conftest import write_app

APP = """
    import json
    from pathlib import Path

    from squall import ChatMiddleware, ConnectionMiddleware, Input, Unauthorized, action

    EVENTS = Path(__file__).with_name("events.log")


    def _record(line):
        with EVENTS.open("a") as log:
            log.write(line + "\\n")


    @action(
        inputs={"name": Input(required=True), "times": Input(default=1, formatter=int)},
        output_example={"greeting": "Hello, Ada"},
    )
    async def hello(data):
        return {"greeting": ", ".join([f"Hello, {data.params['name']}"] * data.params["times"])}


    @action(version=2)
    async def hello2(data):
        return {"version": 2}


    @action(name="hello2", version=1)
    async def hello2_v1(data):
        return {"version": 1}


    @action()
    async def crash(data):
        raise RuntimeError("the database is down")


    @action()
    async def forbidden(data):
        raise PermissionError("admins only")


    @action(inputs={"token": Input()})
    async def secret(data):
        if data.params.get("token") != "s3cret":
            raise Unauthorized("sign in first")
        return {"secret": 42}


    @action()
    async def unencodable(data):
        loop = {}
        loop["self"] = loop
        return loop


    @action()
    async def whoami(data):
        return {"fingerprint": data.connection.fingerprint, "type": data.connection.type}


    @action(inputs={"frames": Input(required=True)})
    async def push(data):
        for frame in data.params["frames"]:
            data.connection.send(frame)
        return {"pushed": len(data.params["frames"])}


    @action()
    async def kick(data):
        data.connection.destroy()
        return {}


    def _join(connection, room):
        if room == "vip":
            raise PermissionError("vip members only")
        if room == "team":
            return {"badge": "blue"}  # the member's public info (PROTOCOL.md §8)


    def _leave(connection, room):
        _record(f"leave {connection.id} {room}")


    chat = ChatMiddleware(name="chat", join=_join, leave=_leave)


    def _create(connection):
        if connection.fingerprint == "banned":
            raise PermissionError("you are banned")


    def _destroy(connection):
        _record(f"destroy {connection.id}")


    lifecycle = ConnectionMiddleware(name="lifecycle", create=_create, destroy=_destroy)
"""

OPTIONS = """
    general:
      serverName: harnessed
      welcomeMessage: Welcome to the harness
      startingChatRooms:
        defaultRoom: {}
        vip: {}
        team: {presence: true, history: {size: 5}}
    servers:
      websocket:
        enabled: true
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_app(
        tmp_path / "project",
        {"actions/app.py": APP, "public/index.html": "<h1>Hi</h1>"},
        OPTIONS,
    )


@pytest.fixture
async def harness(project: Path) -> AsyncIterator[Harness]:
    config = project / "config"
    async with Harness(project, config_files=[config / "unit.yaml", config / "extra.yaml"]) as h:
        yield h


def events(project: Path) -> list[str]:
    log = project / "actions" / "events.log"
    return log.read_text().splitlines() if log.exists() else []


# --- run: an HTTP request ----------------------------------------------------------------------


async def test_run_answers_the_reply_fields_and_200(harness):
    reply = await harness.run("hello", {"name": "Ada", "times": "2"})

    assert isinstance(reply, Reply)
    assert reply.status == 200
    assert reply == {"greeting": "Hello, Ada, Hello, Ada"}
    assert reply.error is None


@pytest.mark.parametrize(
    ("action", "params", "status", "error"),
    [
        ("nope", {}, 404, "unknown action or invalid apiVersion"),
        ("hello", {}, 422, "name is a required parameter for this action"),
        (
            "hello",
            {"name": "Ada", "times": "x"},
            422,
            'Input for parameter "times" failed validation!',
        ),
    ],
)
async def test_run_answers_client_errors_with_their_status(harness, action, params, status, error):
    reply = await harness.run(action, params)

    assert (reply.status, reply.error) == (status, error)


async def test_run_answers_500_for_an_exception_and_logs_it(harness, caplog):
    with caplog.at_level(logging.ERROR, logger="squall"):
        reply = await harness.run("crash")

    assert reply.status == 500
    assert "the database is down" in caplog.text


async def test_run_answers_errors_raised_on_purpose_with_their_status(harness):
    assert (await harness.run("forbidden")).status == 403  # a PermissionError is a Forbidden
    refused = await harness.run("secret")
    assert (refused.status, refused.error) == (401, "sign in first")
    assert await harness.run("secret", {"token": "s3cret"}) == {"secret": 42}


async def test_run_a_reply_json_cannot_hold_is_a_500(harness, caplog):
    with caplog.at_level(logging.ERROR, logger="squall"):
        reply = await harness.run("unencodable")

    assert "could not be encoded as JSON" in caplog.text
    assert reply.status == 500
    assert reply == {"error": "the reply cannot be sent as JSON (ValueError)"}


async def test_run_picks_the_version_asked(harness):
    assert (await harness.run("hello2"))["version"] == 2
    assert (await harness.run("hello2", api_version=1))["version"] == 1
    assert (await harness.run("hello2", api_version=3)).status == 404


async def test_run_is_a_web_connection_with_the_fingerprint_given(harness):
    reply = await harness.run("whoami", fingerprint="browser-1")

    assert reply == {"fingerprint": "browser-1", "type": "web"}
    assert len(harness.app.connections) == 0  # the request is over


async def test_run_params_go_through_json_as_on_the_wire(harness):
    reply = await harness.run("push", {"frames": ({"a": (1, 2)},)})

    assert reply == {"pushed": 1}  # a tuple arrives as a list; pushes over HTTP are dropped


# --- connect: a socket ---------------------------------------------------------------------------


async def test_a_socket_is_welcomed(harness):
    socket = await harness.connect()

    assert await socket.next() == {"context": "api", "welcome": "Welcome to the harness"}
    assert socket.pushed == [{"context": "api", "welcome": "Welcome to the harness"}]


async def test_socket_verbs_answer_as_the_wire_does(harness):
    socket = await harness.connect(fingerprint="browser-1")

    assert await socket.room_add("defaultRoom") == {
        "status": "OK",
        "context": "response",
        "data": True,
        "messageId": 1,
        "messageCount": 1,
    }
    view = await socket.room_view("defaultRoom")
    assert view["data"]["members"].keys() == {socket.id}
    details = (await socket.details_view())["data"]
    assert (details["id"], details["fingerprint"], details["type"]) == (
        socket.id,
        "browser-1",
        "webSocket",
    )
    assert details["rooms"] == ["defaultRoom"]
    assert (await socket.file("index.html"))["content"] == "<h1>Hi</h1>"
    assert (await socket.documentation())["data"]["hello"]["1"]["outputExample"] == {
        "greeting": "Hello, Ada"
    }
    assert "pong" in (await socket.ping())["data"]
    assert (await socket.room_leave("defaultRoom"))["data"] is True
    assert (await socket.action("hello", {"name": "Bo"}))["greeting"] == "Hello, Bo"
    assert (await socket.request("nope"))["error"] == "verb not found or not allowed (nope)"
    assert (await socket.send("not json"))["context"] == "error"


async def test_say_reaches_every_member_with_the_sender_as_from(harness):
    alice, bob = await harness.connect(), await harness.connect()
    await alice.room_add("defaultRoom")
    await bob.room_add("defaultRoom")

    assert (await alice.say("defaultRoom", "hi bob"))["status"] == "OK"

    said = await bob.next(lambda frame: frame.get("context") == "user")
    assert (said["from"], said["message"], said["room"]) == (alice.id, "hi bob", "defaultRoom")
    assert (await alice.next(lambda frame: frame.get("context") == "user"))["message"] == "hi bob"


async def test_presence_frames_are_collected_and_missed_messages_recovered(harness):
    ada, bo = await harness.connect(), await harness.connect()
    await ada.room_add("team")
    await bo.room_add("team")
    await ada.say("team", "seen")
    seen = await bo.next(lambda frame: frame.get("message") == "seen")
    await bo.room_leave("team")
    await ada.say("team", "missed")

    since = {"offset": seen["offset"], "epoch": seen["epoch"]}
    back = await bo.room_add("team", since=since)
    history = await bo.room_history("team", limit=1)

    assert back["data"]["recovered"] is True
    assert [m["message"] for m in back["data"]["messages"]] == ["missed"]
    assert history["data"]["messages"] == back["data"]["messages"]
    await bo.next(lambda frame: frame.get("event") == "join" and frame["id"] == bo.id)
    blue = {"badge": "blue"}
    assert [(f["event"], f["id"], f.get("info"), f.get("reason")) for f in ada.presence] == [
        ("join", ada.id, blue, None),
        ("join", bo.id, blue, None),
        ("leave", bo.id, None, "left"),
        ("join", bo.id, blue, None),
    ]


async def test_frames_an_action_pushes_are_collected_in_order(harness):
    socket = await harness.connect()
    await socket.next()  # the welcome

    reply = await socket.action("push", {"frames": [{"n": 1}, {"context": "alert", "n": 2}]})

    assert reply["pushed"] == 2
    assert [await socket.next(), await socket.next()] == [{"n": 1}, {"context": "alert", "n": 2}]


async def test_server_pushes_reach_a_socket(harness):
    socket = await harness.connect()

    assert await harness.app.send_to(socket.id, {"context": "alert", "text": "hey"})

    assert await socket.next(lambda frame: frame.get("context") == "alert") == {
        "context": "alert",
        "text": "hey",
    }


async def test_next_fails_clearly_when_nothing_comes(harness):
    socket = await harness.connect()

    with pytest.raises(AssertionError, match=r"no matching frame in 0\.05s"):
        await socket.next(lambda frame: frame.get("context") == "user", timeout=0.05)


async def test_join_middleware_errors_are_the_reply_error(harness):
    socket = await harness.connect()

    assert (await socket.room_add("vip"))["error"] == "vip members only"


async def test_quit_closes_with_4000_and_runs_leave_then_destroy(harness, project):
    socket = await harness.connect()
    await socket.room_add("defaultRoom")

    assert await socket.quit() is None

    assert (socket.close_code, socket.closed) == (4000, True)
    assert events(project) == [f"leave {socket.id} defaultRoom", f"destroy {socket.id}"]
    with pytest.raises(SocketClosed, match="the socket is closed"):
        await socket.ping()


async def test_destroy_from_an_action_closes_with_4000(harness, project):
    socket = await harness.connect()

    await socket.action("kick")

    assert socket.close_code == 4000
    await socket.close()  # waits for the cleanup the destroy started
    assert events(project) == [f"destroy {socket.id}"]
    assert len(harness.app.connections) == 0


async def test_closing_a_socket_runs_the_cleanup_of_a_disconnect(harness, project):
    socket = await harness.connect()
    await socket.room_add("defaultRoom")

    await socket.close()

    assert events(project) == [f"leave {socket.id} defaultRoom", f"destroy {socket.id}"]
    assert await harness.app.rooms.members("defaultRoom") == {}


async def test_a_refused_socket_is_closed_with_4001_and_the_reason(harness, project):
    socket = await harness.connect(fingerprint="banned")

    assert (socket.close_code, socket.close_reason) == (4001, "you are banned")
    assert socket.pushed == []  # no welcome
    assert events(project) == []  # never created, so never destroyed


# --- lifecycle ---------------------------------------------------------------------------------


async def test_stop_closes_the_sockets_still_open(project):
    config = project / "config"
    harness = Harness(project, config_files=[config / "unit.yaml", config / "extra.yaml"])
    await harness.start()
    socket = await harness.connect()

    await harness.stop()

    assert socket.closed
    assert events(project) == [f"destroy {socket.id}"]
    with pytest.raises(RuntimeError, match="the harness is not started"):
        _ = harness.app


async def test_options_by_dotted_key_are_set_last(project):
    config = project / "config"
    files = [config / "unit.yaml", config / "extra.yaml"]
    async with Harness(project, config={"general.serverName": "other"}, config_files=files) as h:
        assert h.app.name == "other"
    async with Harness(project, config_files=files) as harness:
        assert harness.app.name == "harnessed"


async def test_a_project_without_a_socket_endpoint_has_no_sockets(project):
    config = project / "config"
    async with Harness(project, config_files=[config / "unit.yaml"]) as harness:
        with pytest.raises(RuntimeError, match=r"servers\.websocket\.enabled is false"):
            await harness.connect()


async def test_a_project_without_http_actions_runs_none(project):
    config = project / "config"
    options = {"servers.web.enabled": False, "servers.websocket.enabled": True}
    async with Harness(project, config=options, config_files=[config / "unit.yaml"]) as harness:
        with pytest.raises(RuntimeError, match=r"servers\.web\.enabled is false"):
            await harness.run("hello", {"name": "Ada"})
        assert (await (await harness.connect()).action("hello", {"name": "Ada"}))["greeting"]


async def test_a_test_may_add_its_own_actions(project):
    @action(name="probe")
    async def probe(data):
        return {"probed": True}

    @action(name="guarded", middleware=["nobody"])
    async def guarded(data):
        return {}

    config = [project / "config" / "unit.yaml"]
    async with Harness(project, config_files=config, actions=[probe]) as harness:
        assert await harness.run("probe") == {"probed": True}
    with pytest.raises(ActionLoadError, match="names middleware 'nobody', which no file declares"):
        await Harness(project, config_files=config, actions=[guarded]).start()
