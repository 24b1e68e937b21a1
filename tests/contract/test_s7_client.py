"""PROTOCOL.md §7 from outside: the generated client in Chromium against real servers. Each
test runs one async function in the page (with tests/browser/helpers.js: every wait bounded)
and compares what it returns.

Chromium lives for this module only: Playwright's sync API holds the thread's event loop while
it runs, which the asyncio tests of the other modules need (the browser tier, all sync, keeps
its own for the session, and runs last)."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
from browser.support import HERE as BROWSER_HERE
from browser.support import chromium, client_page
from playwright.sync_api import Browser, Page
from testkit import NON_EMPTY_STR, TIMEOUT, Match, now_ms, ok

from .support import running_server


def fresh_details() -> dict:
    """A fresh connection's detailsView data (PROTOCOL.md §2.1)."""
    return {
        "id": NON_EMPTY_STR,
        "fingerprint": NON_EMPTY_STR,
        "type": "webSocket",
        "remoteIP": "127.0.0.1",
        "remotePort": Match("<port>", lambda p: isinstance(p, int) and p > 0),
        "params": {},
        "connectedAt": now_ms(),
        "rooms": [],
        "totalActions": 0,
        "pendingActions": 0,
    }


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, as the browser tier launches it, for this module's pages."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(server, new_page) -> Page:
    return client_page(new_page(), server)


def renamed_page(page: Page, renamed) -> Page:
    """A page of the renamed server (its files at /static, its client at gen/myClient.js)."""
    page.goto(f"{renamed.base_url}/static/index.html")
    page.add_script_tag(url="/static/gen/myClient.js")
    page.evaluate("(timeout) => { window.TIMEOUT = timeout; }", TIMEOUT * 2000)
    page.add_script_tag(path=BROWSER_HERE / "helpers.js")
    return page


# --- new ActionheroClient(options) -------------------------------------------------------------


def test_s7_new_ActionheroClient_just_works_on_a_page_the_server_serves(renamed, new_page):
    page = renamed_page(new_page(), renamed)
    with page.expect_websocket() as socket:
        result = page.evaluate("""async () => {
            const client = track(new ActionheroClient());
            const details = await within(client.connect(), "connect");
            const reply = await within(client.action("echo", {via: "socket"}), "action");
            client.disconnect();
            return {details, reply, welcome: events.find(([name]) => name === "welcome")[1]};
        }""")
    assert socket.value.url == f"ws://127.0.0.1:{renamed.port}/sock"
    assert result["welcome"] == {"context": "api", "welcome": "Welcome to the renamed server"}
    assert result["details"]["data"]["type"] == "webSocket"
    assert result["reply"]["via"] == "socket"


#: servers.websocket.client's defaults (config/default.yaml)
CLIENT_DEFAULTS = {
    "apiPath": "/api",
    "timeout": 10000,
    "ping": 25000,
    "pong": 10000,
    "queueSize": 100,
    "reconnect": {"min": 500, "max": 30000, "retries": None},
}


def test_s7_options_default_to_servers_websocket_client_plus_url_the_pages_origin(server, page):
    options = page.evaluate("() => new ActionheroClient().options")
    assert {key: options[key] for key in CLIENT_DEFAULTS} == CLIENT_DEFAULTS
    assert options["url"] == server.base_url  # window.location.origin
    given = page.evaluate("() => new ActionheroClient({ping: 5, url: 'http://x.example'}).options")
    assert (given["ping"], given["url"], given["pong"]) == (5, "http://x.example", 10000)


def test_s7_options_default_to_servers_websocket_client_action_offline_posts_to_apiPath(
    renamed, new_page
):
    # the renamed server's servers.websocket.client.apiPath is /act
    page = renamed_page(new_page(), renamed)
    with page.expect_request("**/act/echo") as request:
        reply = page.evaluate(
            "() => within(new ActionheroClient().action('echo', {via: 'http'}), 'action')"
        )
    assert (request.value.method, request.value.url) == (
        "POST",
        f"{renamed.base_url}/act/echo",
    )
    assert (reply["action"], reply["via"]) == ("echo", "http")


# --- connect(cb) and what the client keeps ----------------------------------------------------


def test_s7_connect_cb_gets_null_and_the_whole_detailsView_reply(page):
    result = page.evaluate("""async () => {
        const client = new ActionheroClient();
        const args = await within(new Promise((resolve) =>
            client.connect(function () { resolve(Array.from(arguments)); })), "connect");
        const r = {args, kept: client.details, id: client.id, fingerprint: client.fingerprint,
                   rooms: [client.rooms.slice()]};
        await within(client.roomAdd("defaultRoom"), "roomAdd");
        r.rooms.push(client.rooms.slice());
        await within(client.roomLeave("defaultRoom"), "roomLeave");
        r.rooms.push(client.rooms.slice());
        client.disconnect();
        return r;
    }""")
    error, details = result["args"]
    assert error is None
    assert details == ok(fresh_details(), 1, 1)
    assert result["kept"] == details["data"]
    assert (result["id"], result["fingerprint"]) == (
        details["data"]["id"],
        details["data"]["fingerprint"],
    )
    assert result["rooms"] == [[], ["defaultRoom"], []]


VERBS = """[
    ["action", "echo", {n: 1}], ["action", "randomNumber"], ["action", "noSuchAction", {}],
    ["file", "index.html"], ["file", "no-such-file"], ["detailsView"],
    ["roomAdd", "defaultRoom"], ["say", "defaultRoom", "hi"], ["say", "no-such-room", "hi"],
    ["roomView", "defaultRoom"], ["roomHistory", "defaultRoom"], ["roomHistory", "defaultRoom", 2],
    ["roomLeave", "defaultRoom"], ["roomLeave", "defaultRoom"], ["documentation"],
]"""
#: The error of each of VERBS' replies.
ERRORS = [None, None, "unknown action or invalid apiVersion", None, "That file is not found",
          None, None, None, "room does not exist", None, None, None, None,
          "connection not in this room (defaultRoom)", None]  # fmt: skip


def test_s7_each_verb_calls_cb_with_one_argument_the_reply_frame(page):
    calls = page.evaluate(f"""async () => {{
        const client = new ActionheroClient();
        await within(client.connect(), "connect");
        const calls = [];
        for (const [verb, ...args] of {VERBS}) {{
            const got = await within(new Promise((resolve) =>
                client[verb](...args, function () {{ resolve(Array.from(arguments)); }})), verb);
            calls.push([verb, got]);
        }}
        client.disconnect();
        return calls;
    }}""")
    for verb, args in calls:
        assert len(args) == 1, (verb, args)
        assert args[0]["context"] == "response", (verb, args)
    errors = [args[0].get("error") for _, args in calls]
    assert errors == ERRORS


def test_s7_without_cb_each_verb_returns_a_promise_of_the_reply_even_an_error(page):
    calls = page.evaluate(f"""async () => {{
        const client = new ActionheroClient();
        await within(client.connect(), "connect");
        const calls = [];
        for (const [verb, ...args] of {VERBS}) {{
            const promise = client[verb](...args);
            calls.push([verb, promise instanceof Promise,
                        await within(promise.then((r) => ["resolved", r],
                                                  (e) => ["rejected", e.message]), verb)]);
        }}
        client.disconnect();
        return calls;
    }}""")
    for verb, is_promise, (outcome, reply) in calls:
        assert (is_promise, outcome, reply["context"]) == (True, "resolved", "response"), verb
    assert [reply.get("error") for _, _, (_, reply) in calls] == ERRORS


def test_s7_the_generated_client_counts_messageIds_up_from_1(page):
    sent = page.evaluate("""async () => {
        recordSent();
        const client = new ActionheroClient();
        await within(client.connect(), "connect");
        await within(client.roomAdd("defaultRoom"), "roomAdd");
        await within(client.say("defaultRoom", "x"), "say");
        client.disconnect();
        return sent;
    }""")
    assert [(frame["event"], frame["messageId"]) for frame in sent] == [
        ("detailsView", 1),
        ("roomAdd", 2),
        ("say", 3),
    ]


# --- state, disconnect, and which closes reconnect ----------------------------------------------

#: Close the page's socket as if the server had closed it with `code`: the close event the
#: client sees carries that code (a page may not send 1001 or 1008 itself).
SYNTHETIC_CLOSE = """
window.sockets = [];
window.WebSocket = class extends WebSocket {
    constructor(...args) { super(...args); sockets.push(this); }
};
window.closeAs = (code) => {
    const socket = sockets[sockets.length - 1];
    socket.dispatchEvent(new CloseEvent("close", {code, reason: "synthetic", wasClean: true}));
};
"""


@pytest.fixture
def synthetic(server, new_page) -> Page:
    """A client page whose sockets the test can close with any code (closeAs)."""
    page = new_page()
    page.add_init_script(SYNTHETIC_CLOSE)
    return client_page(page, server)


@pytest.mark.parametrize("code", [1000, 1001, 1006, 1011, 3001, 4002])
def test_s7_reconnects_after_a_close_other_than_4000_4001_1008(synthetic, code):
    result = synthetic.evaluate(
        """async (code) => {
        const client = track(new ActionheroClient({reconnect: {min: 10, max: 20}}));
        const states = [client.state];
        client.on("reconnecting", () => states.push(client.state));
        await within(client.connect(), "connect");
        states.push(client.state);
        const firstId = client.id;
        const back = next(client, "reconnect");
        closeAs(code);
        await back;
        states.push(client.state);
        const r = {states, firstId, id: client.id, details: client.details.id,
                   sockets: sockets.length};
        client.disconnect();
        r.final = client.state;
        return r;
    }""",
        code,
    )
    assert result["states"] == ["disconnected", "connected", "reconnecting", "connected"]
    assert result["id"] != result["firstId"] and result["details"] == result["id"]
    assert (result["sockets"], result["final"]) == (2, "disconnected")


@pytest.mark.parametrize("code", [4000, 4001, 1008])
def test_s7_does_not_reconnect_after_4000_4001_1008(synthetic, code):
    result = synthetic.evaluate(
        """async (code) => {
        const client = track(new ActionheroClient({reconnect: {min: 1, max: 1}}));
        await within(client.connect(), "connect");
        const gone = next(client, "disconnected");
        closeAs(code);
        await gone;
        // an HTTP round trip: time enough for a 1 ms reconnect that must not happen
        await within(client.action("echo"), "http action");
        return {state: client.state, sockets: sockets.length,
                names: names().filter((name) => !["message", "welcome"].includes(name))};
    }""",
        code,
    )
    assert result == {"state": "disconnected", "sockets": 1,
                      "names": ["connected", "disconnected"]}  # fmt: skip


def test_s7_does_not_reconnect_after_the_servers_4001(server, page):
    page.context.add_cookies([{"name": "sessionID", "value": "reject-me", "url": server.base_url}])
    result = page.evaluate("""async () => {
        const client = track(new ActionheroClient({reconnect: {min: 1, max: 1}}));
        const error = await within(new Promise((resolve) => client.connect(resolve)), "connect");
        await within(client.action("echo"), "http action");
        return {error: error && error.message, state: client.state,
                names: names().filter((name) => name !== "message")};
    }""")
    assert result["error"]  # refused: connect calls back with the error
    assert result["state"] == "disconnected"
    assert "reconnecting" not in result["names"]


def test_s7_reconnects_after_the_servers_1001_to_a_server_that_is_back(tmp_path_factory, new_page):
    with running_server(tmp_path_factory, "restarting", {}) as restarting:
        page = client_page(new_page(), restarting)
        page.evaluate("""async () => {
            window.client = track(new ActionheroClient({reconnect: {min: 50, max: 200}}));
            await within(client.connect(), "connect");
            await within(client.roomAdd("defaultRoom"), "roomAdd");
            window.firstId = client.id;
        }""")
        restarting.signal(signal.SIGTERM)
        assert restarting.wait_exit(timeout=TIMEOUT) == 0
        page.wait_for_function("() => client.state === 'reconnecting'")
        restarting.start()
        page.wait_for_function("() => names().includes('reconnect')")
        result = page.evaluate("""async () => ({
            view: await within(client.roomView("defaultRoom"), "roomView"),
            id: client.id, firstId, rooms: client.rooms, state: client.state})""")
    assert result["state"] == "connected" and result["rooms"] == ["defaultRoom"]
    assert result["id"] != result["firstId"]
    assert list(result["view"]["data"]["members"]) == [result["id"]]  # re-joined


def test_s7_disconnect_closes_for_good(synthetic):
    result = synthetic.evaluate("""async () => {
        const client = track(new ActionheroClient({reconnect: {min: 1, max: 1}}));
        await within(client.connect(), "connect");
        client.disconnect();
        const state = client.state;
        await within(client.action("echo"), "http action");
        return {state, later: client.state, sockets: sockets.length,
                closed: sockets[0].readyState === WebSocket.CLOSING
                        || sockets[0].readyState === WebSocket.CLOSED};
    }""")
    assert result == {"state": "disconnected", "later": "disconnected", "sockets": 1,
                      "closed": True}  # fmt: skip


def test_s7_first_reconnect_waits_at_most_reconnect_min_500_by_default(synthetic):
    info = synthetic.evaluate("""async () => {
        const client = new ActionheroClient();
        await within(client.connect(), "connect");
        const scheduled = next(client, "reconnecting");
        closeAs(4002);
        const info = await scheduled;
        client.disconnect();
        return info;
    }""")
    assert info["attempt"] == 1 and 0 <= info["delay"] <= 500


# --- heartbeat and connect timeout ----------------------------------------------------------------


def test_s7_heartbeat_sends_ping_every_ping_ms(page):
    pings = page.evaluate("""async () => {
        recordSent();
        const client = new ActionheroClient({ping: 100});
        await within(client.connect(), "connect");
        const started = Date.now();
        await within(new Promise((resolve) => {
            const check = setInterval(() => {
                if (sent.filter((f) => f.event === "ping").length >= 3) {
                    clearInterval(check); resolve();
                }
            }, 10);
        }), "three pings");
        const elapsed = Date.now() - started;
        client.disconnect();
        return {pings: sent.filter((f) => f.event === "ping"), elapsed};
    }""")
    assert [set(frame) for frame in pings["pings"]] == [{"event", "messageId"}] * 3
    assert 200 <= pings["elapsed"] < 1000


def test_s7_no_pong_within_pong_ms_closes_and_reconnects(page):
    # the route forwards every frame but the pings: the server never answers one
    page.route_web_socket("**/primus", _forward_all_but_pings)
    result = page.evaluate("""async () => {
        const client = track(new ActionheroClient({ping: 100, pong: 200,
                                                   reconnect: {min: 10, max: 20}}));
        await within(client.connect(), "connect");
        const started = Date.now();
        await next(client, "reconnecting");
        const lost = Date.now() - started;
        await next(client, "reconnect");
        client.disconnect();
        return {lost};
    }""")
    assert 300 <= result["lost"] < 2000  # ping 100 + pong 200, then the close


def _forward_all_but_pings(route) -> None:
    server = route.connect_to_server()
    route.on_message(lambda message: None if '"ping"' in str(message) else server.send(message))


def test_s7_timeout_bounds_each_connect_attempt(page):
    # the route accepts every socket and never answers: no welcome, no detailsView reply
    page.route_web_socket("**/primus", lambda route: None)
    result = page.evaluate("""async () => {
        const client = track(new ActionheroClient({timeout: 300,
                                                   reconnect: {min: 10, max: 20, retries: 2}}));
        const started = Date.now();
        const error = await within(new Promise((resolve) => client.connect(resolve)), "connect");
        return {error: error && error.message, elapsed: Date.now() - started,
                state: client.state, attempts: names().filter((n) => n === "reconnecting").length};
    }""")
    assert result["error"] and result["state"] == "disconnected"
    assert result["attempts"] == 2
    assert 3 * 300 <= result["elapsed"] < 3 * 300 + 2000  # three attempts, each bounded


# --- events ----------------------------------------------------------------------------------


def test_s7_every_inbound_frame_fires_message_first_then_its_event(server, page):
    room = page.evaluate(
        "async () => (await within(new ActionheroClient().action('createChatRoom', "
        "{name: 'c7-' + Date.now(), presence: true}), 'room')).name"
    )
    frames = [{"context": "alert", "a": 1}, {"context": "api", "b": 2}, {"c": 3},
              {"context": "error", "error": "pushed"}]  # fmt: skip
    result = page.evaluate(
        """async ([room, frames]) => {
        const client = track(new ActionheroClient());
        await within(client.connect(), "connect");
        await within(client.roomAdd(room), "roomAdd");
        await within(client.say(room, "hi"), "say");
        await within(client.action("pushTest", {frames}), "push");
        const other = new ActionheroClient();
        await within(other.connect(), "other");
        await within(other.roomAdd(room), "other joins");
        const left = next(client, "leave");
        other.disconnect();
        await left;
        client.disconnect();
        return names();
    }""",
        [room, frames],
    )
    pairs = result
    expected = ["message", "welcome", "message", "connected",  # welcome, detailsView
                "message",  # roomAdd's reply
                "message", "join",  # its own join
                "message", "message", "say",  # say: reply and push, in either order
                "message", "alert", "message", "api", "message", "api", "message", "error",
                "message",  # pushTest's reply
                "message", "join", "message", "leave", "disconnected"]  # fmt: skip
    assert sorted(pairs) == sorted(expected)
    for index, name in enumerate(pairs):
        if name not in ("message", "connected", "disconnected"):
            assert pairs[index - 1] == "message", result
