"""The generated client in Chromium against a real server: every method and event of
PROTOCOL.md §7, once with ``actionheroClient.js`` and once with ``.min.js``.

Each test runs one async function in the page and asserts on what it returns. The page-side
helpers (helpers.js) bound every wait, so a missing reply fails the test instead of hanging it.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from playwright.sync_api import Page

from .support import WELCOME, client_page

_rooms = itertools.count()


@pytest.fixture(params=["actionheroClient.js", "actionheroClient.min.js"])
def page(request: pytest.FixtureRequest, server, new_page) -> Page:
    """A page of the server with the client loaded (full or minified) and the helpers."""
    return client_page(new_page(), server, request.param)


def new_room(page: Page) -> str:
    """A room of its own for one test, made over HTTP by the client (connected or not)."""
    name = f"room-{next(_rooms)}"
    reply = page.evaluate(
        "async (name) => within(new ActionheroClient().action('createChatRoom', {name}), 'room')",
        name,
    )
    assert reply["didCreate"] is True, reply
    return name


def reply_ok(message_id: int, **fields: Any) -> dict:
    return {"status": "OK", "context": "response", "messageId": message_id, **fields}


def without_count(reply: dict) -> dict:
    assert isinstance(reply.pop("messageCount"), int)
    return reply


# ----- connecting ---------------------------------------------------------------------------


def test_connect_calls_back_with_details(page):
    result = page.evaluate("""async () => {
        const client = track(new ActionheroClient());
        const [error, details] = await within(new Promise((resolve) =>
            client.connect((error, details) => resolve([error, details]))), "connect");
        return {error, details, state: client.state, id: client.id,
                fingerprint: client.fingerprint, kept: client.details,
                welcomeMessage: client.welcomeMessage, events};
    }""")

    reply = result["details"]  # PROTOCOL §7: the whole detailsView reply, as ActionHero's
    assert (reply["status"], reply["context"]) == ("OK", "response")
    details = reply["data"]
    assert result["error"] is None
    assert result["state"] == "connected"
    assert details["type"] == "webSocket"
    assert details["rooms"] == []
    assert result["id"] == details["id"]
    assert result["kept"] == details  # client.details keeps its data
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    assert result["fingerprint"] == details["fingerprint"] == cookies["sessionID"]
    assert result["welcomeMessage"] == WELCOME
    welcome = {"context": "api", "welcome": WELCOME}
    assert [name for name, _ in result["events"]] == ["message", "welcome", "message", "connected"]
    assert result["events"][0][1] == result["events"][1][1] == welcome


def test_connect_without_callback_returns_a_promise(page):
    result = page.evaluate("""async () => {
        const client = new ActionheroClient();
        const states = [client.state];
        const connecting = client.connect();
        states.push(client.state);
        const details = await within(connecting, "connect");
        const again = await within(client.connect(), "connect again");
        states.push(client.state);
        return {details, again, id: client.id, states};
    }""")

    assert result["details"]["data"]["id"] == result["id"]
    assert result["again"] == result["details"]
    assert result["states"] == ["disconnected", "connecting", "connected"]


# ----- verbs --------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["callback", "promise"])
def test_verbs_reply_with_the_server_frame(page, style):
    room = new_room(page)

    result = page.evaluate(
        """async ([style, room]) => {
        const client = track(new ActionheroClient());
        await within(client.connect(), "connect");
        const r = {id: client.id};
        r.roomAdd = await invoke(style, client, "roomAdd", room);
        r.roomsAfterAdd = client.rooms.slice();
        r.roomView = await invoke(style, client, "roomView", room);
        const said = next(client, "say");
        r.say = await invoke(style, client, "say", room, {text: "hello"});
        r.sayEvent = await said;
        r.roomLeave = await invoke(style, client, "roomLeave", room);
        r.roomsAfterLeave = client.rooms.slice();
        r.detailsView = await invoke(style, client, "detailsView");
        r.documentation = await invoke(style, client, "documentation");
        r.file = await invoke(style, client, "file", "index.html");
        r.action = await invoke(style, client, "action", "echo", {hello: "world"});
        r.sayIsMessageFirst = names().indexOf("message") < names().indexOf("say");
        client.disconnect();
        return r;
    }""",
        [style, room],
    )

    me = result["id"]
    assert without_count(result["roomAdd"]) == reply_ok(2, data=True)
    assert result["roomsAfterAdd"] == [room]
    view = without_count(result["roomView"])
    joined_at = view["data"]["members"][me]["joinedAt"]
    assert view == reply_ok(
        3,
        data={"room": room, "membersCount": 1, "members": {me: {"id": me, "joinedAt": joined_at}}},
    )
    assert without_count(result["say"]) == reply_ok(4)
    say = result["sayEvent"]
    assert say == {"context": "user", "message": {"text": "hello"}, "room": room, "from": me,
                   "sentAt": say["sentAt"]}  # fmt: skip
    assert result["sayIsMessageFirst"]
    assert without_count(result["roomLeave"]) == reply_ok(5, data=True)
    assert result["roomsAfterLeave"] == []
    details = without_count(result["detailsView"])
    assert details["messageId"] == 6
    assert details["data"]["id"] == me
    documentation = without_count(result["documentation"])
    assert documentation["messageId"] == 7
    assert {"echo", "createChatRoom", "pushTest"} <= set(documentation["data"])
    file = without_count(result["file"])
    assert file["messageId"] == 8
    assert "Squall" in file["content"]
    assert (file["mime"], file["error"]) == ("text/html", None)
    action = without_count(result["action"])
    assert action["messageId"] == 9
    assert action["hello"] == "world"
    assert "error" not in action


@pytest.mark.parametrize("style", ["callback", "promise"])
def test_failed_verbs_resolve_with_the_error(page, style):
    result = page.evaluate(
        """async (style) => {
        const client = new ActionheroClient();
        await within(client.connect(), "connect");
        const r = {};
        r.roomAdd = await invoke(style, client, "roomAdd", "no-such-room");
        r.rooms = client.rooms.slice();
        r.roomLeave = await invoke(style, client, "roomLeave", "defaultRoom");
        r.say = await invoke(style, client, "say", "defaultRoom", "not a member");
        r.file = await invoke(style, client, "file", "../setup.cfg");
        r.action = await invoke(style, client, "action", "noSuchAction");
        client.disconnect();
        return r;
    }""",
        style,
    )

    assert result["roomAdd"]["error"] == "room does not exist"
    assert result["rooms"] == []
    assert result["roomLeave"]["error"] == "connection not in this room (defaultRoom)"
    assert result["say"]["error"] == "connection not in this room (defaultRoom)"
    assert result["file"]["error"] == "That file is not found"
    assert result["action"]["error"] == "unknown action or invalid apiVersion"
    assert all(reply["context"] == "response" for reply in result.values() if "context" in reply)


def test_action_goes_over_http_while_not_connected(page):
    with page.expect_request("**/api/echo") as request:
        result = page.evaluate("""async () => {
            const client = new ActionheroClient();
            const r = {state: client.state};
            r.callback = await invoke("callback", client, "action", "echo", {hello: "http"});
            r.promise = await invoke("promise", client, "action", "echo", {n: 1});
            r.missing = await invoke("promise", client, "action", "noSuchAction");
            return r;
        }""")

    assert result["state"] == "disconnected"
    assert result["callback"]["hello"] == "http"
    assert result["promise"]["n"] == 1
    assert "messageId" not in result["promise"]
    assert result["missing"]["error"] == "unknown action or invalid apiVersion"
    sent = request.value
    assert sent.method == "POST"
    assert sent.post_data_json == {"hello": "http"}
    assert "sessionID=" in sent.all_headers()["cookie"]


def test_message_ids_count_up_from_one(page):
    ids = page.evaluate("""async () => {
        recordSent();
        const client = new ActionheroClient();
        await within(client.connect(), "connect");
        await within(Promise.all([client.detailsView(), client.roomView("defaultRoom"),
                                  client.action("echo")]), "verbs");
        client.disconnect();
        return sent.map((frame) => frame.messageId);
    }""")

    assert ids == [1, 2, 3, 4]


# ----- events -------------------------------------------------------------------------------


def test_server_pushes_fire_events_by_context(page):
    frames = [
        {"context": "alert", "message": "look up"},
        {"context": "api", "notice": "maintenance"},
        {"context": "custom", "kind": "whatever"},
        {"context": "user", "message": "pushed", "room": "defaultRoom", "from": "server"},
        {"context": "error", "error": "something broke"},
    ]

    result = page.evaluate(
        """async (frames) => {
        const client = new ActionheroClient();
        await within(client.connect(), "connect");
        track(client);
        const reply = await within(client.action("pushTest", {frames}), "pushTest");
        client.disconnect();
        return {reply, events};
    }""",
        frames,
    )

    assert result["reply"]["pushed"] == len(frames)
    alert, api, custom, user, error = frames
    assert result["events"] == [
        ["message", alert],
        ["alert", alert],
        ["message", api],
        ["api", api],
        ["message", custom],
        ["api", custom],
        ["message", user],
        ["say", user],
        ["message", error],
        ["error", {"error": "something broke"}],
        ["message", {**result["reply"]}],
        ["disconnected", None],
    ]


def test_off_removes_a_listener(page):
    counts = page.evaluate("""async () => {
        const client = new ActionheroClient();
        const counts = {kept: 0, removed: 0};
        const removed = () => counts.removed++;
        client.on("message", () => counts.kept++);
        client.on("message", removed);
        client.off("message", removed);
        await within(client.connect(), "connect");
        client.disconnect();
        return counts;
    }""")

    assert counts == {"kept": 2, "removed": 0}  # the welcome and the detailsView reply


def test_a_throwing_listener_does_not_break_the_client(page, page_errors):
    with page.expect_event("pageerror"):
        details = page.evaluate("""async () => {
            const client = new ActionheroClient();
            client.on("welcome", () => { throw new Error("listener bug"); });
            const details = await within(client.connect(), "connect");
            client.disconnect();
            return details;
        }""")

    assert details["data"]["type"] == "webSocket"
    assert page_errors == ["listener bug"]
    page_errors.clear()


def test_a_readable_session_cookie_goes_in_the_socket_url(page):
    page.evaluate("() => { document.cookie = 'readableSession=abc 123'; }")

    with page.expect_websocket() as socket:
        page.evaluate("""async () => {
            const client = new ActionheroClient({cookieKey: "readableSession"});
            await within(client.connect(), "connect");
            client.disconnect();
        }""")

    assert socket.value.url.endswith("/primus?readableSession=abc%20123")
