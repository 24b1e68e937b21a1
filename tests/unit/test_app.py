"""The core as server code and transports see it: a whole :class:`Squall` in a temporary
application folder, driven without sockets. Rooms and registry must be empty after clients go.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading

import pytest

from squall import Squall, load_config
from squall.connections import Connection
from squall.errors import ActionLoadError, ConnectionRefused

from .conftest import REPO, bounded, feed, socket_connection, transport_of, write_app

HOOKS = """
    import inspect

    from squall import ConnectionMiddleware, Input, action


    def _notify(connection, key):
        hook = connection.params.get(key)
        if hook is not None:
            return hook(connection)


    async def create(connection):
        waited = _notify(connection, "on_create")
        if inspect.isawaitable(waited):
            await waited


    def destroy(connection):
        _notify(connection, "on_destroy")


    audit = ConnectionMiddleware(name="audit", create=create, destroy=destroy)


    @action(inputs={"to": Input(required=True)})
    async def push(data):
        message = {"context": "alert", "from": data.connection.id}
        return {"delivered": await data.app.send_to(data.params["to"], message)}


    @action()
    async def poke(data):
        data.connection.send({"poked": [1, 2]})
        return {}


    @action()
    async def blocker(data):
        data.connection.params["reported"].wait(5)  # blocks the event loop on purpose
        return {"unblocked": True}
"""

LOBBY = """
    general:
      id: unit-server
      serverName: unit
      startingChatRooms:
        lobby: {}
"""


@pytest.fixture
async def app(make_app) -> Squall:
    return await make_app(files={"actions/hooks.py": HOOKS}, extra_yaml=LOBBY)


class Departures:
    """Counts ``destroy`` middleware runs: cleanup (rooms left, then destroy) is then over."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen: list[str] = []
        self.done = asyncio.Event()

    def __call__(self, connection: Connection) -> None:
        self.seen.append(connection.id)
        if len(self.seen) >= self.expected:
            self.done.set()

    async def wait(self) -> None:
        await bounded(self.done.wait())


async def opened(app: Squall, departures: Departures | None = None, **options) -> Connection:
    connection = socket_connection(**options)
    if departures is not None:
        connection.params["on_destroy"] = departures
    await app.lifecycle.open(connection)
    return connection


async def assert_no_trace(app: Squall) -> None:
    assert len(app.connections) == 0
    assert app.connections.counts() == {"total": 0, "webSocket": 0}
    assert app.rooms.local_rooms() == []
    for room in await app.rooms.list():
        assert await app.rooms.members(room) == {}


# -- start ------------------------------------------------------------------------------------


async def test_start_creates_the_starting_rooms(app):
    assert await app.rooms.list() == ["defaultRoom", "lobby"]


async def test_app_identity_from_config(app):
    status = app.status()

    assert (status["id"], status["name"], status["apiVersion"]) == ("unit-server", "unit", "1.0.0")
    assert status["broker"] == {"kind": "memory", "state": "ok", "rooms": 2}
    assert (status["pendingActions"], status["stopping"]) == (0, False)


async def test_app_refuses_a_broken_action_file(tmp_path):
    root = write_app(tmp_path / "broken", {"actions/bad.py": "raise RuntimeError('nope')\n"})

    with pytest.raises(ActionLoadError) as caught:
        Squall(load_config(root, "test", environ={}))

    assert str(caught.value) == f"{root / 'actions' / 'bad.py'}:1: RuntimeError: nope"


# -- connections ------------------------------------------------------------------------------


async def test_open_connection_registers_and_runs_create(app):
    created = []
    connection = socket_connection("c0")
    connection.params["on_create"] = lambda c: created.append(c.id)

    await app.lifecycle.open(connection)

    assert created == ["c0"]
    assert app.connections.get("c0") is connection
    assert app.connections.counts() == {"total": 1, "webSocket": 1}
    assert app.status()["connections"] == {"total": 1, "webSocket": 1}


async def test_create_middleware_refusing_leaves_no_trace(app):
    def refuse(connection):
        raise PermissionError("no entry")

    connection = socket_connection("c0")
    connection.params["on_create"] = refuse

    with pytest.raises(ConnectionRefused, match=r"^no entry$"):
        await app.lifecycle.open(connection)

    assert connection.closed is True
    assert "c0" not in app.connections
    await app.stop()  # waits for the cleanup it started
    await assert_no_trace(app)


async def test_a_connection_closed_during_create_is_never_announced_to_the_broker(app):
    """A peer that leaves while a slow ``create`` runs must not be registered with the broker
    after its cleanup (in Redis, ``send_to`` would then find it forever)."""
    announced: list[str] = []

    async def record(connection_id: str) -> None:
        announced.append(connection_id)

    app.broker.connection_opened = record
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_create(connection):
        started.set()
        await release.wait()

    connection = socket_connection("c0")
    connection.params["on_create"] = slow_create
    opening = asyncio.ensure_future(app.lifecycle.open(connection))
    await bounded(started.wait())
    cleanup = app.lifecycle.close(connection)  # the peer went away meanwhile
    release.set()
    await bounded(opening)
    await bounded(cleanup)

    assert announced == []
    assert await app.send_to("c0", {"context": "alert"}) is False
    await assert_no_trace(app)


@pytest.mark.parametrize(("expose", "shown"), [(True, "no database"), (False, None)])
async def test_create_middleware_bug_is_logged_and_its_text_exposed_or_not(
    make_app, caplog, expose, shown
):
    """The 4001 close reason of a create hook's bug is its text only when
    general.exposeErrors is true; else ``internal error (ref <id>)``, the id in the log."""
    app = await make_app(
        files={"actions/hooks.py": HOOKS},
        extra_yaml=LOBBY + f"      exposeErrors: {str(expose).lower()}\n",
    )

    def broken(connection):
        raise RuntimeError("no database")

    connection = socket_connection("c0")
    connection.params["on_create"] = broken
    with caplog.at_level(logging.ERROR, "squall"), pytest.raises(ConnectionRefused) as caught:
        await app.lifecycle.open(connection)

    (record,) = caplog.records
    ref = re.search(r"\(ref ([0-9a-f]{12})\)$", record.getMessage()).group(1)
    assert str(caught.value) == (shown or f"internal error (ref {ref})")
    assert record.exc_info[0] is RuntimeError
    assert "c0" not in app.connections


async def test_close_connection_is_idempotent(app):
    departures = Departures(1)
    connection = await opened(app, departures, connection_id="c0")
    await app.rooms.join(connection, "lobby")

    app.lifecycle.close(connection)
    app.lifecycle.close(connection)
    await departures.wait()

    assert departures.seen == ["c0"]
    assert connection.rooms == []
    await assert_no_trace(app)


async def test_closed_connection_gets_no_more_frames(app):
    departures = Departures(1)
    connection = await opened(app, departures)
    app.lifecycle.close(connection)
    await departures.wait()

    connection.send({"late": True})
    await app.rooms.broadcast("lobby", "late")

    assert transport_of(connection).frames == []


async def test_many_connections_join_and_close_leave_nothing(app):
    departures = Departures(60)
    connections = [await opened(app, departures) for _ in range(60)]
    for index, connection in enumerate(connections):
        await feed(app.protocol, connection, {"event": "roomAdd", "room": "defaultRoom"})
        if index % 2:
            await feed(app.protocol, connection, {"event": "roomAdd", "room": "lobby"})
    assert len(await app.rooms.members("defaultRoom")) == 60
    assert len(await app.rooms.members("lobby")) == 30

    for connection in connections:
        app.lifecycle.close(connection)
    await departures.wait()

    assert sorted(departures.seen) == sorted(c.id for c in connections)
    assert all(c.rooms == [] for c in connections)
    await assert_no_trace(app)


async def test_quit_closes_4000_and_cleans_up(app):
    departures = Departures(1)
    connection = await opened(app, departures)
    await feed(app.protocol, connection, {"event": "roomAdd", "room": "lobby"})

    assert await feed(app.protocol, connection, {"event": "quit"}) is None
    await departures.wait()

    assert transport_of(connection).closes == [(4000, "connection destroyed")]
    await assert_no_trace(app)


async def test_destroy_closes_4000_once_and_cleans_up(app):
    departures = Departures(1)
    connection = await opened(app, departures)
    await app.rooms.join(connection, "defaultRoom")

    connection.destroy()
    connection.destroy()
    await departures.wait()

    assert transport_of(connection).closes == [(4000, "connection destroyed")]
    await assert_no_trace(app)


async def test_destroyed_room_member_is_told(app):
    connection = await opened(app)
    await app.rooms.join(connection, "lobby")

    await app.rooms.destroy("lobby")

    (notice,) = transport_of(connection).pushed()
    assert {k: v for k, v in notice.items() if k != "sentAt"} == {
        "context": "user",
        "message": "this room has been deleted",
        "room": "lobby",
        "from": 0,
    }
    assert connection.rooms == []


# -- pushes -----------------------------------------------------------------------------------


async def test_connection_send_from_an_action_adds_no_keys(app):
    connection = await opened(app)

    reply = await feed(
        app.protocol, connection, {"event": "action", "messageId": 1, "params": {"action": "poke"}}
    )

    assert reply == {"context": "response", "messageId": 1, "messageCount": 1}
    assert transport_of(connection).pushed() == [{"poked": [1, 2]}]


async def test_send_to_reaches_another_connection(app):
    sender = await opened(app, connection_id="sender")
    target = await opened(app, connection_id="target")

    frame = {"event": "action", "messageId": 1, "params": {"action": "push", "to": "target"}}
    reply = await feed(app.protocol, sender, frame)

    assert reply == {"delivered": True, "context": "response", "messageId": 1, "messageCount": 1}
    assert transport_of(target).pushed() == [{"context": "alert", "from": "sender"}]
    assert transport_of(sender).frames == []


async def test_send_to_unknown_connection_is_false(app):
    assert await app.send_to("nobody", {"x": 1}) is False


async def test_send_to_http_connection_is_false(app):
    web = Connection("web", "127.0.0.1", 1, connection_id="web-1")
    await app.lifecycle.open(web)

    assert await app.send_to("web-1", {"x": 1}) is False
    assert app.connections.counts() == {"total": 1, "web": 1}


async def test_send_all_writes_one_frame_to_everyone(app):
    connections = [await opened(app) for _ in range(5)]
    await app.lifecycle.open(Connection("web", "127.0.0.1", 1))

    await app.send_all({"context": "api", "note": "hello all"})

    frames = [transport_of(c).frames for c in connections]
    assert all(len(written) == 1 and written[0] is frames[0][0] for written in frames)
    assert transport_of(connections[0]).pushed() == [{"context": "api", "note": "hello all"}]


# -- lifecycle ----------------------------------------------------------------------------------


async def test_drain_refuses_actions_then_stop_marks_stopping(app):
    connection = await opened(app)

    assert await bounded(app.drain()) is True
    reply = await feed(
        app.protocol, connection, {"event": "action", "messageId": 1, "params": {"action": "poke"}}
    )
    await app.stop()

    assert reply == {
        "error": "the server is shutting down",
        "context": "response",
        "messageId": 1,
        "messageCount": 1,
    }
    assert app.status()["stopping"] is True


async def test_blocked_loop_warning_names_the_action(make_app, caplog):
    app = await make_app(
        files={"actions/hooks.py": HOOKS}, extra_yaml="general:\n  blockedLoopWarning: 50\n"
    )
    reported = threading.Event()
    named: list[str] = []

    class Signal(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            # Kept here, not read back from caplog: the watchdog thread may still be handing
            # the record on to caplog's handler when the unblocked action lets the test go on.
            if "action blocker" in record.getMessage():  # a loaded machine may stall elsewhere
                named.append(record.getMessage())
                reported.set()

    signal = Signal(logging.WARNING)
    logging.getLogger("squall.watchdog").addHandler(signal)
    connection = await opened(app)
    connection.params["reported"] = reported
    try:
        with caplog.at_level(logging.WARNING, "squall.watchdog"):
            reply = await feed(
                app.protocol,
                connection,
                {"event": "action", "messageId": 1, "params": {"action": "blocker"}},
            )
    finally:
        logging.getLogger("squall.watchdog").removeHandler(signal)

    assert reply == {"unblocked": True, "context": "response", "messageId": 1, "messageCount": 1}
    assert reported.is_set()
    message = named[0]
    assert message.startswith("blocked loop: action blocker has blocked the event loop for ")
    assert message.endswith(
        "; make it non-blocking or declare it as a plain def to run it in a thread"
    )


# -- the shipped actions ----------------------------------------------------------------------


async def test_documentation_verb_equals_show_documentation_action(make_app):
    shipped = str(REPO / "actions")
    app = await make_app(extra_yaml=f"general:\n  paths:\n    actions: [{shipped}]\n")
    connection = await opened(app)

    verb = await feed(app.protocol, connection, {"event": "documentation", "messageId": 1})
    action = await feed(
        app.protocol,
        connection,
        {"event": "action", "messageId": 2, "params": {"action": "showDocumentation"}},
    )

    assert "showDocumentation" in verb["data"]
    documented = {
        k: v for k, v in action.items() if k not in ("context", "messageId", "messageCount")
    }
    assert documented == {"documentation": verb["data"]}


ORDERED = """
    from squall import ConnectionMiddleware


    def recorder(name):
        def hook(connection):
            connection.params.setdefault("calls", []).append(name)
            done = connection.params.get("on_" + name.split(":")[0])
            if done is not None and name.endswith(":last"):
                done(connection)

        return hook


    late = ConnectionMiddleware(
        name="late", create=recorder("create:last"), destroy=recorder("destroy:last"), priority=200
    )
    early = ConnectionMiddleware(
        name="early", create=recorder("create:first"), destroy=recorder("destroy:first"), priority=1
    )
"""


async def test_connection_middleware_runs_by_priority(make_app):
    app = await make_app(files={"actions/ordered.py": ORDERED})
    departures = Departures(1)
    connection = socket_connection()
    connection.params["on_destroy"] = departures

    await app.lifecycle.open(connection)
    app.lifecycle.close(connection)
    await departures.wait()

    assert connection.params["calls"] == [
        "create:first",
        "create:last",
        "destroy:first",
        "destroy:last",
    ]
