"""The client's connection lifecycle against a server the test crashes, freezes and restarts on
the same port (PROTOCOL.md §6 and §7): reconnect with backoff, re-join, queue, heartbeat,
connect timeout, giving up, and the closes after which it must not reconnect."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page
from testkit import free_port

from .support import client_page

SCRIPTS = ["actionheroClient.js", "actionheroClient.min.js"]


def start_client(page: Page, **options) -> None:
    """Create `window.client` with `options`, tracked, connected and in defaultRoom."""
    page.evaluate(
        """async (options) => {
        window.client = track(new ActionheroClient(options));
        await within(client.connect(), "connect");
        await within(client.roomAdd("defaultRoom"), "roomAdd");
        window.firstId = client.id;
    }""",
        options,
    )


def wait_for_state(page: Page, state: str) -> None:
    page.wait_for_function("(state) => client.state === state", arg=state)


@pytest.mark.parametrize("script", SCRIPTS)
def test_reconnects_after_a_crash_rejoins_and_sends_the_queue(own_server, new_page, script):
    page = client_page(new_page(), own_server, script)
    start_client(page, reconnect={"min": 50, "max": 400}, queueSize=1)

    own_server.kill9()
    wait_for_state(page, "reconnecting")
    page.evaluate("""() => {
        window.said = next(client, "say");
        window.queued = client.say("defaultRoom", "sent while down");
        window.overflow = client.say("defaultRoom", "one too many");
    }""")
    own_server.start()
    page.wait_for_function("() => names().includes('reconnect')")
    result = page.evaluate("""async () => ({
        queued: await within(queued, "queued say"),
        overflow: await within(overflow, "overflowing say"),
        said: await said,
        view: await within(client.roomView("defaultRoom"), "roomView"),
        firstId, id: client.id, details: client.details, rooms: client.rooms,
        state: client.state, names: names(),
    })""")

    me = result["id"]
    assert me != result["firstId"]
    assert result["details"]["id"] == me
    assert result["rooms"] == ["defaultRoom"]
    assert list(result["view"]["data"]["members"]) == [me]
    assert result["queued"]["status"] == "OK"
    assert result["overflow"]["error"] == "the send queue is full (1 frames)"
    assert (result["said"]["message"], result["said"]["from"]) == ("sent while down", me)
    assert result["state"] == "connected"
    lifecycle = [n for n in result["names"] if n not in ("message", "welcome", "say")]
    assert lifecycle[:3] == ["connected", "disconnected", "reconnecting"]
    assert lifecycle[-2:] == ["connected", "reconnect"]
    assert set(lifecycle[2:-2]) == {"reconnecting"}


def test_backoff_doubles_with_full_jitter_up_to_max(own_server, new_page):
    page = client_page(new_page(), own_server)
    start_client(page, reconnect={"min": 20, "max": 80})

    own_server.kill9()
    page.wait_for_function("() => names().filter((n) => n === 'reconnecting').length >= 6")
    delays = page.evaluate("""() => events.filter(([name]) => name === "reconnecting")
                                          .map(([, info]) => info)""")

    assert [d["attempt"] for d in delays[:6]] == [1, 2, 3, 4, 5, 6]
    for info, ceiling in zip(delays, [20, 40, 80, 80, 80, 80], strict=False):
        assert 0 <= info["delay"] <= ceiling


def test_heartbeat_finds_a_dead_link_and_connect_attempts_time_out(own_server, new_page):
    page = client_page(new_page(), own_server)
    start_client(page, ping=150, pong=250, timeout=300, reconnect={"min": 20, "max": 50})

    own_server.freeze()  # the socket stays open, nothing answers: only the heartbeat can tell
    page.evaluate("() => { window.inFlight = client.detailsView(); }")
    wait_for_state(page, "reconnecting")
    lost = page.evaluate("() => within(inFlight, 'the lost reply')")
    # With the server frozen the kernel still accepts connections, so only `timeout` ends them.
    page.wait_for_function("() => names().filter((n) => n === 'reconnecting').length >= 2")
    own_server.thaw()
    page.wait_for_function("() => names().includes('reconnect')")

    assert lost["error"] == "the connection was lost"
    assert page.evaluate("() => client.state") == "connected"


def test_disconnect_closes_for_good(server, new_page):
    page = client_page(new_page(), server)
    start_client(page, reconnect={"min": 1, "max": 1})

    result = page.evaluate("""async () => {
        const inFlight = client.detailsView().then(() => "resolved", (error) => error.message);
        client.disconnect();
        const r = {state: client.state, inFlight: await within(inFlight, "inFlight")};
        r.after = await client.say("defaultRoom", "x").then(() => "resolved", (e) => e.message);
        r.callback = await invoke("callback", client, "roomView", "defaultRoom");
        // An HTTP round trip: time enough for a 1 ms reconnect that must not happen.
        r.http = await within(client.action("echo", {n: 1}), "http action");
        r.names = names().slice(names().lastIndexOf("connected") + 1)
                         .filter((name) => name !== "message");
        r.finalState = client.state;
        return r;
    }""")

    assert result["state"] == result["finalState"] == "disconnected"
    assert result["inFlight"] == "the client disconnected"
    assert result["after"] == "the client is disconnected"
    assert result["callback"] == {
        "status": "the client is disconnected",
        "error": "the client is disconnected",
        "context": "response",
        "messageId": result["callback"]["messageId"],
    }
    assert result["http"]["n"] == 1
    assert result["names"] == ["disconnected"]


def test_destroy_by_the_server_closes_for_good(server, new_page):
    page = client_page(new_page(), server)
    start_client(page, reconnect={"min": 1, "max": 1})

    result = page.evaluate("""async () => {
        const reply = client.action("destroyTest").then(
            (r) => r, (error) => ({message: error.message, code: error.code}));
        await next(client, "disconnected");
        const r = {reply: await within(reply, "destroyTest"), state: client.state};
        r.http = await within(client.action("echo", {n: 2}), "http action");
        r.names = names().slice(names().lastIndexOf("connected") + 1)
                         .filter((name) => name !== "message");
        return r;
    }""")

    assert result["reply"]["code"] == 4000  # rejected: closed for good before the reply
    assert result["reply"]["message"]  # the close reason, or a sentence naming the code
    assert result["state"] == "disconnected"
    assert result["names"] == ["disconnected"]


def test_gives_up_after_the_retries(server, new_page):
    page = client_page(new_page(), server)

    result = page.evaluate(
        """async (url) => {
        const client = track(new ActionheroClient({url, reconnect: {min: 5, max: 10, retries: 2}}));
        const error = await within(new Promise((resolve) => client.connect(resolve)), "give up");
        return {error: error && error.message, state: client.state, names: names()};
    }""",
        f"http://127.0.0.1:{free_port()}",
    )

    assert result["error"] == "gave up after 2 reconnection attempts"
    assert result["state"] == "disconnected"
    assert result["names"] == ["reconnecting", "reconnecting", "disconnected"]
