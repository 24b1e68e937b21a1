"""Sessions (PROTOCOL.md §4): one dict per fingerprint, shared by a browser's HTTP requests and
sockets, kept sessionTtl after its last use across reconnects, JSON only, bounded in size, saved
after each action and each hook that may change it."""

from __future__ import annotations

import logging

import pytest

from squall.connections import Connection
from squall.sessions import MemorySessionStore, SessionError, Sessions
from squall.testing import Harness

from .conftest import Clock

APP = """
    from squall import ChatMiddleware, ConnectionMiddleware, Forbidden, Input, action


    @action(inputs={"team": Input(required=True)})
    async def sign_in(data):
        data.connection.session["team"] = data.params["team"]
        return {}


    @action()
    async def whoami(data):
        return {"session": dict(data.connection.session)}


    @action(inputs={"key": Input(required=True), "value": Input()})
    async def store(data):
        data.connection.session[data.params["key"]] = data.params.get("value")
        return {}


    @action()
    def store_in_a_thread(data):
        data.connection.session["thread"] = True
        return {}


    @action()
    async def store_then_crash(data):
        data.connection.session["half"] = "done"
        raise RuntimeError("the disk is full")


    @action()
    async def store_then_refuse(data):
        data.connection.session["attempts"] = data.connection.session.get("attempts", 0) + 1
        raise Forbidden("not yet")


    @action()
    async def store_a_set(data):
        data.connection.session["tags"] = {"a", "b"}
        return {}


    @action()
    async def sign_out(data):
        data.connection.session.clear()
        return {}


    def _join(connection, room):
        team = room.removeprefix("team-")
        if team != room and connection.session.get("team") != team:
            raise Forbidden(f"only team {team} may join {room}")
        connection.session["joined"] = room


    teams = ChatMiddleware(name="teams", join=_join)


    def _create(connection):
        connection.session["visits"] = connection.session.get("visits", 0) + 1


    def _destroy(connection):
        connection.session["left"] = True


    visits = ConnectionMiddleware(name="visits", create=_create, destroy=_destroy)
"""

OPTIONS = """
    general:
      sessionMaxBytes: 200
      startingChatRooms:
        team-red: {}
        lobby: {}
    servers:
      websocket:
        enabled: true
"""


@pytest.fixture
async def squall(make_harness) -> Harness:
    return await make_harness({"actions/app.py": APP}, OPTIONS)


async def test_what_an_http_action_stores_the_browsers_socket_sees(squall):
    signed = await squall.run("sign_in", {"team": "red"})
    socket = await squall.connect(fingerprint=signed.fingerprint)

    reply = await socket.action("whoami")

    assert reply["session"] == {"team": "red", "visits": 1}


async def test_an_open_socket_sees_an_http_change_at_once(squall):
    socket = await squall.connect(fingerprint="browser-1")

    await squall.run("sign_in", {"team": "red"}, fingerprint="browser-1")

    assert socket.connection.session["team"] == "red"  # the very same dict
    assert (await socket.action("whoami"))["session"]["team"] == "red"


async def test_join_middleware_checks_a_session_set_over_http(squall):
    stranger = await squall.connect(fingerprint="browser-2")
    assert (await stranger.room_add("team-red"))["error"] == "only team red may join team-red"

    await squall.run("sign_in", {"team": "red"}, fingerprint="browser-2")

    assert (await stranger.room_add("team-red"))["data"] is True
    assert await squall.session("browser-2") == {
        "visits": 1,
        "team": "red",
        "joined": "team-red",  # what the join hook stored is saved
    }


async def test_a_reconnect_keeps_the_session(squall):
    first = await squall.connect(fingerprint="browser-3")
    await first.action("store", {"key": "draft", "value": "hello"})
    await first.close()

    again = await squall.connect(fingerprint="browser-3")

    assert (await again.action("whoami"))["session"] == {
        "draft": "hello",
        "visits": 2,  # create middleware ran again, and saw the first visit
        "left": True,  # what destroy middleware stored at the first close
    }


async def test_other_browsers_do_not_share_it(squall):
    await squall.run("sign_in", {"team": "red"}, fingerprint="browser-4")

    other = await squall.run("whoami", fingerprint="browser-5")

    assert other["session"] == {}


async def test_a_session_given_to_run_is_what_the_action_sees(squall):
    reply = await squall.run("whoami", session={"team": "blue"})

    assert reply["session"] == {"team": "blue"}
    assert await squall.session(reply.fingerprint) == {"team": "blue"}


async def test_plain_def_actions_store_too(squall):
    reply = await squall.run("store_in_a_thread")

    assert await squall.session(reply.fingerprint) == {"thread": True}


async def test_a_server_error_keeps_nothing_of_the_failed_action(squall, caplog):
    with caplog.at_level(logging.ERROR, logger="squall"):
        reply = await squall.run("store_then_crash", session={"team": "red"})

    assert reply.status == 500
    assert await squall.session(reply.fingerprint) == {"team": "red"}


async def test_an_error_raised_on_purpose_still_saves(squall):
    first = await squall.run("store_then_refuse")
    second = await squall.run("store_then_refuse", fingerprint=first.fingerprint)

    assert (second.status, second.error) == (403, "not yet")
    assert await squall.session(first.fingerprint) == {"attempts": 2}


async def test_a_value_json_cannot_hold_fails_the_action_naming_the_key(squall, caplog):
    with caplog.at_level(logging.ERROR, logger="squall"):
        reply = await squall.run("store_a_set", session={"team": "red"})

    assert reply.status == 500
    assert reply.error == (
        "connection.session cannot be saved: the value of 'tags' is not JSON "
        "(Object of type set is not JSON serializable)"
    )
    assert await squall.session(reply.fingerprint) == {"team": "red"}  # put back as it was


async def test_a_session_over_the_size_limit_fails_the_action(squall, caplog):
    with caplog.at_level(logging.ERROR, logger="squall"):
        reply = await squall.run("store", {"key": "essay", "value": "x" * 300})

    assert reply.error == (
        "connection.session is 312 bytes as JSON, over the 200 of general.sessionMaxBytes"
    )
    assert await squall.session(reply.fingerprint) == {}


async def test_a_request_without_a_cookie_leaves_no_session_behind(squall):
    await squall.run("whoami")
    await squall.run("whoami", fingerprint="browser-6")

    assert len(squall.app.sessions.store) == 0


async def test_a_cleared_session_is_stored_empty_for_every_server_to_see(squall):
    await squall.run("sign_in", {"team": "red"}, fingerprint="browser-7")
    await squall.run("sign_out", fingerprint="browser-7")

    assert await squall.app.sessions.store.get("browser-7", 1000) == b"{}"


# --- the store and the TTL, with a clock of the test's own --------------------------------------


def browser(fingerprint: str) -> Connection:
    return Connection("web", "127.0.0.1", 1, fingerprint=fingerprint)


async def test_a_session_is_kept_ttl_after_its_last_use():
    clock = Clock()
    sessions = Sessions(MemorySessionStore(clock), ttl_ms=10_000, max_bytes=1000)
    request = browser("b")
    await sessions.open(request)
    request.session["n"] = 1
    await sessions.close(request)

    clock.now += 9.0
    assert await sessions.read("b") == {"n": 1}  # a use: the TTL starts again
    clock.now += 9.0
    assert await sessions.read("b") == {"n": 1}
    clock.now += 10.5
    assert await sessions.read("b") == {}


async def test_open_connections_keep_their_sessions_alive():
    clock = Clock()
    store = MemorySessionStore(clock)
    sessions = Sessions(store, ttl_ms=10_000, max_bytes=1000)
    socket, gone = browser("open"), browser("gone")
    for connection in (socket, gone):
        await sessions.open(connection)
        connection.session["n"] = 1
        await sessions.save(connection)
    await sessions.close(gone)

    clock.now += 20.0
    await store.touch(["open"], 10_000)  # what the timer does for live sessions

    assert await sessions.read("open") == {"n": 1}
    assert len(store) == 1  # the other expired and was forgotten


async def test_connections_of_one_fingerprint_share_one_dict():
    sessions = Sessions(MemorySessionStore(), ttl_ms=10_000, max_bytes=1000)
    one, two, other = browser("same"), browser("same"), browser("other")
    for connection in (one, two, other):
        await sessions.open(connection)

    assert one.session is two.session
    assert one.session is not other.session


async def test_write_replaces_a_live_session_in_place():
    sessions = Sessions(MemorySessionStore(), ttl_ms=10_000, max_bytes=1000)
    socket = browser("w")
    await sessions.open(socket)
    held = socket.session

    await sessions.write("w", {"signed": "in"})

    assert held == {"signed": "in"}
    with pytest.raises(SessionError, match=r"over the 1000 of general\.sessionMaxBytes"):
        await sessions.write("w", {"big": "x" * 1000})


# --- a store that cannot be reached (Redis down) -------------------------------------------------


class FlakyStore(MemorySessionStore):
    """A shared store that can be taken down, as Redis can."""

    shared = True

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("Error 111 connecting to redis:6379. Connection refused.")

    async def get(self, fingerprint, ttl_ms):
        self._check()
        return await super().get(fingerprint, ttl_ms)

    async def put(self, fingerprint, data, ttl_ms):
        self._check()
        await super().put(fingerprint, data, ttl_ms)

    async def touch(self, fingerprints, ttl_ms):
        self._check()
        await super().touch(fingerprints, ttl_ms)


async def test_an_unreachable_store_fails_only_what_uses_a_session(caplog):
    store = FlakyStore()
    sessions = Sessions(store, ttl_ms=10_000, max_bytes=1000)
    socket = browser("held")
    await sessions.open(socket)
    socket.session["team"] = "red"
    await sessions.save(socket)
    store.down = True

    with caplog.at_level(logging.WARNING, logger="squall.sessions"):
        request = browser("new")
        await sessions.open(request)  # no error yet: the request may not need its session
        await sessions.refresh(socket)

    with pytest.raises(ConnectionError, match="Connection refused"):
        request.session.get("team")
    with pytest.raises(ConnectionError):
        request.session["team"] = "blue"
    assert socket.session == {"team": "red"}  # the socket goes on with its session as last read
    assert caplog.messages == [
        "cannot reach the session store (Error 111 connecting to redis:6379. Connection "
        "refused.): sockets keep their sessions"
    ]  # once per outage
    socket.session["seen"] = True
    with pytest.raises(ConnectionError):
        await sessions.save(socket)  # the change stays, for a later save
    await sessions.close(request)

    store.down = False
    again = browser("new")
    await sessions.open(again)
    assert again.session == {}
    await sessions.save(socket)
    assert await store.get("held", 10_000) == b'{"team":"red","seen":true}'


async def test_a_socket_opened_during_an_outage_gets_its_session_when_the_store_returns(caplog):
    store = FlakyStore()
    sessions = Sessions(store, ttl_ms=10_000, max_bytes=1000)
    await store.put("b", b'{"team":"red"}', 10_000)
    store.down = True
    first, second = browser("b"), browser("b")
    await sessions.open(first)
    await sessions.open(second)

    store.down = False
    await sessions.refresh(first)  # at its next action

    assert first.session == {"team": "red"}
    assert second.session is first.session


async def test_a_change_the_store_refused_is_written_by_the_next_save_of_another_holder():
    store = FlakyStore()
    sessions = Sessions(store, ttl_ms=10_000, max_bytes=1000)
    socket, request = browser("shared"), browser("shared")
    await sessions.open(socket)
    await sessions.open(request)
    store.down = True
    request.session["cart"] = ["tea"]
    with pytest.raises(ConnectionError):
        await sessions.save(request)
    sessions.release(request)  # the HTTP request ends, its change unsaved
    store.down = False

    await sessions.save(socket)  # the socket's next action, which never read the session

    assert await store.get("shared", 10_000) == b'{"cart":["tea"]}'


async def test_a_save_writes_what_was_read_through_the_connection_since_the_last_one():
    store = MemorySessionStore()
    sessions = Sessions(store, ttl_ms=10_000, max_bytes=1000)
    socket = browser("kept")
    await sessions.open(socket)
    kept = socket.session
    kept["n"] = 1
    await sessions.save(socket)

    kept["n"] = 2  # through a reference kept from an earlier read
    await sessions.save(socket)
    assert await store.get("kept", 10_000) == b'{"n":1}'  # nothing read it since: not encoded

    assert socket.session["n"] == 2
    await sessions.save(socket)
    assert await store.get("kept", 10_000) == b'{"n":2}'
