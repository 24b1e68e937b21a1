"""The socket verbs, sans I/O: frame text in, reply dict out (PROTOCOL.md §2, §3).

Every test feeds frames to :meth:`SocketProtocol.receive` for a connection whose transport only
records, and compares whole reply dicts.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import time
import uuid

import pytest

from squall import ActionMiddleware, ChatMiddleware, Forbidden, Input
from squall.errors import ErrorMessages

from .conftest import bounded, declared, feed, start_feed, transport_of

NOW = 1_700_000_000_123


def ok(data, message_id, count):
    return {
        "status": "OK",
        "context": "response",
        "data": data,
        "messageId": message_id,
        "messageCount": count,
    }


def failed(text, message_id, count):
    return {
        "status": text,
        "error": text,
        "context": "response",
        "messageId": message_id,
        "messageCount": count,
    }


def action_reply(fields, message_id, count):
    return {**fields, "context": "response", "messageId": message_id, "messageCount": count}


def user_message(message, room, sender, sent_at=NOW):
    return {"context": "user", "message": message, "room": room, "from": sender, "sentAt": sent_at}


class Probes:
    """Test actions; ``slow`` waits for ``release`` and tells when ``expected`` are waiting."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.all_waiting = asyncio.Event()
        self.expected = 1
        self.waiting = 0

    async def echo(self, data):
        return dict(data.params)

    async def slow(self, data):
        self.waiting += 1
        if self.waiting >= self.expected:
            self.all_waiting.set()
        await self.release.wait()
        return dict(data.params)

    async def boom(self, data):
        raise RuntimeError("the action broke")

    def actions(self):
        def positive(value):
            return value > 0 or "n must be positive"

        return [
            declared(self.echo, "echo"),
            declared(self.slow, "slow"),
            declared(self.boom, "boom"),
            declared(
                self.echo,
                "needs",
                inputs={"n": Input(required=True, formatter=int, validator=positive)},
            ),
            declared(self.echo, "strict", inputs={"n": Input(validator=lambda v: v == 1)}),
            declared(self.echo, "versioned", version=2, description="v2"),
        ]


@pytest.fixture
def probes():
    return Probes()


@pytest.fixture
async def core(make_core, probes):
    return await make_core(actions=probes.actions(), rooms=["defaultRoom", "other"])


@pytest.fixture
def conn(core):
    return core.connect("conn-1")


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    """joinedAt and sentAt come from squall.rooms.now_ms."""
    monkeypatch.setattr("squall.rooms.now_ms", lambda: NOW)


# -- frames that are not requests -----------------------------------------------------------


async def test_receive_binary_frame_is_an_error_frame(core, conn):
    reply = await feed(core.protocol, conn, b'{"event": "ping"}')

    assert reply == {"context": "error", "error": "binary frames are not supported; send JSON text"}
    assert conn.message_count == 1


@pytest.mark.parametrize("text", ["{", '{"event": "ping"', "{'event': 'ping'}", "ping", ""])
async def test_receive_invalid_json_is_an_error_frame(core, conn, text):
    reply = await feed(core.protocol, conn, text)

    assert list(reply) == ["context", "error"]
    assert reply["context"] == "error"
    assert reply["error"].startswith("invalid JSON: ")
    assert len(reply["error"]) > len("invalid JSON: ")


async def test_receive_invalid_json_error_says_where(core, conn):
    reply = await feed(core.protocol, conn, '{"event": ')

    assert reply["error"].startswith("invalid JSON: ")
    assert reply["error"].endswith("line 1 column 11 (char 10)")


@pytest.mark.parametrize("text", ["[]", '[{"event": "ping"}]', "5", '"ping"', "null", "true"])
async def test_receive_non_object_json_is_an_error_frame(core, conn, text):
    assert await feed(core.protocol, conn, text) == {
        "context": "error",
        "error": "a frame must be a JSON object",
    }


async def test_receive_error_frame_texts_are_configurable(make_core):
    messages = ErrorMessages({"binaryFrame": "text only", "frameNotObject": "objects only"})
    core = await make_core(messages=messages)
    conn = core.connect()

    assert await feed(core.protocol, conn, b"x") == {"context": "error", "error": "text only"}
    assert await feed(core.protocol, conn, "[]") == {"context": "error", "error": "objects only"}


async def test_receive_bad_frames_write_nothing_and_keep_the_connection(core, conn):
    for frame in (b"\x00", "{", "[]"):
        await feed(core.protocol, conn, frame)

    assert transport_of(conn).frames == []
    assert transport_of(conn).closes == []
    assert await feed(core.protocol, conn, {"event": "ping", "messageId": 1}) is not None


# -- messageId and messageCount -------------------------------------------------------------


@pytest.mark.parametrize("message_id", ["abc", 7, 0, -3, 1.5, "", "Ünïcødé 🚀"])
async def test_receive_echoes_message_id(core, conn, message_id):
    reply = await feed(core.protocol, conn, {"event": "detailsView", "messageId": message_id})

    assert reply["messageId"] == message_id
    assert type(reply["messageId"]) is type(message_id)


@pytest.mark.parametrize(
    "frame", [{"event": "documentation"}, {"event": "documentation", "messageId": None}]
)
async def test_receive_makes_a_uuid4_message_id_when_absent_or_null(core, conn, frame):
    first = await feed(core.protocol, conn, frame)
    second = await feed(core.protocol, conn, frame)

    for reply in (first, second):
        parsed = uuid.UUID(reply["messageId"])
        assert (parsed.version, str(parsed)) == (4, reply["messageId"])
    assert first["messageId"] != second["messageId"]


@pytest.mark.parametrize("message_id", [{"a": 1}, {}, [1, 2], [], True, False])
@pytest.mark.parametrize("verb", ["detailsView", "action", "roomAdd", "say", "quit", "nope"])
async def test_receive_message_id_of_another_type_is_refused_and_not_echoed(
    core, conn, message_id, verb
):
    """PROTOCOL §2.1: the verb does not run; the error has no messageId."""
    frame = {"event": verb, "messageId": message_id, "room": "defaultRoom", "message": "hi"}

    reply = await feed(core.protocol, conn, {**frame, "params": {"action": "echo"}})

    text = "messageId must be a string or a number"
    assert reply == {"status": text, "error": text, "context": "response", "messageCount": 1}
    assert (conn.rooms, conn.total_actions, transport_of(conn).closes) == ([], 0, [])


async def test_receive_message_id_made_for_every_kind_of_reply(core, conn):
    unknown = await feed(core.protocol, conn, {"event": "nope"})
    action = await feed(core.protocol, conn, {"event": "action", "params": {"action": "echo"}})

    assert uuid.UUID(unknown["messageId"]).version == 4
    assert uuid.UUID(action["messageId"]).version == 4


async def test_receive_message_count_counts_every_inbound_frame(core, conn):
    await feed(core.protocol, conn, b"binary")
    await feed(core.protocol, conn, "{")
    await feed(core.protocol, conn, "[]")
    await feed(core.protocol, conn, {"event": "nope", "messageId": "x"})

    reply = await feed(core.protocol, conn, {"event": "detailsView", "messageId": "y"})

    assert reply["messageCount"] == 5
    assert conn.message_count == 5


async def test_receive_message_count_is_per_connection(core, conn):
    other = core.connect("conn-2")
    await feed(core.protocol, conn, {"event": "ping"})
    await feed(core.protocol, conn, {"event": "ping"})

    reply = await feed(core.protocol, other, {"event": "ping"})

    assert reply["messageCount"] == 1


# -- each verb's success reply --------------------------------------------------------------


async def test_ping_replies_pong_with_server_time(core, conn):
    before = int(time.time() * 1000)
    reply = await feed(core.protocol, conn, {"event": "ping", "messageId": 1})
    after = int(time.time() * 1000)

    assert reply == ok({"pong": reply["data"]["pong"]}, 1, 1)
    assert before <= reply["data"]["pong"] <= after


async def test_detailsview_reply(core, conn):
    reply = await feed(core.protocol, conn, {"event": "detailsView", "messageId": 1})

    assert reply == ok(
        {
            "id": "conn-1",
            "fingerprint": conn.fingerprint,
            "type": "webSocket",
            "remoteIP": "127.0.0.1",
            "remotePort": 50000,
            "params": {},
            "connectedAt": conn.connected_at,
            "rooms": [],
            "totalActions": 0,
            "pendingActions": 0,
        },
        1,
        1,
    )


async def test_detailsview_reflects_rooms_and_actions(core, conn):
    await feed(core.protocol, conn, {"event": "roomAdd", "room": "defaultRoom"})
    await feed(core.protocol, conn, {"event": "action", "params": {"action": "echo", "a": 1}})
    await feed(core.protocol, conn, {"event": "action", "params": {"action": "nope"}})

    reply = await feed(core.protocol, conn, {"event": "detailsView", "messageId": 4})

    data = reply["data"]
    assert (data["rooms"], data["totalActions"], data["pendingActions"]) == (["defaultRoom"], 2, 0)
    assert data["params"] == {}
    assert reply["messageCount"] == 4


async def test_detailsview_right_after_an_action_already_counts_it(core, conn):
    # the action's reply is still to come (its coroutine has not started) when detailsView is read
    frame = json.dumps({"event": "action", "params": {"action": "echo"}})
    pending = core.protocol.receive(conn, frame)
    details = await feed(core.protocol, conn, {"event": "detailsView"})

    assert details["data"]["totalActions"] == 1
    assert (await bounded(pending))["context"] == "response"
    details = await feed(core.protocol, conn, {"event": "detailsView"})
    assert (details["data"]["totalActions"], details["data"]["pendingActions"]) == (1, 0)


async def test_documentation_reply(core, conn):
    reply = await feed(core.protocol, conn, {"event": "documentation", "messageId": "d"})

    assert reply == ok(core.registry.documentation(), "d", 1)
    assert reply["data"]["versioned"] == {
        "2": {"name": "versioned", "version": 2, "description": "v2", "inputs": {}}
    }
    assert reply["data"]["needs"]["1"]["inputs"] == {"n": {"required": True}}


async def test_documentation_reply_has_the_verbs_shape_without_middleware(make_core):
    """PROTOCOL.md §2.1: {name, version, description, inputs, outputExample?} per version;
    the middleware an action names is for showDocumentation (the docs page) only."""

    async def guarded(data):
        return {}

    guarded = declared(guarded, middleware=("audit",))
    core = await make_core(actions=[guarded], action_middleware=[ActionMiddleware(name="audit")])

    reply = await feed(core.protocol, core.connect(), {"event": "documentation"})

    assert reply["data"] == {
        "guarded": {"1": {"name": "guarded", "version": 1, "description": "", "inputs": {}}}
    }


async def test_action_reply_carries_the_action_fields(core, conn):
    frame = {"event": "action", "messageId": 9, "params": {"action": "echo", "hello": "world"}}

    reply = await feed(core.protocol, conn, frame)

    assert reply == action_reply({"action": "echo", "hello": "world"}, 9, 1)


async def test_action_reply_selects_api_version(core, conn):
    frame = {
        "event": "action",
        "messageId": 1,
        "params": {"action": "versioned", "apiVersion": "2"},
    }

    reply = await feed(core.protocol, conn, frame)

    assert reply == action_reply({"action": "versioned", "apiVersion": "2"}, 1, 1)


async def test_roomadd_reply(core, conn):
    reply = await feed(
        core.protocol, conn, {"event": "roomAdd", "room": "defaultRoom", "messageId": 1}
    )

    assert reply == ok(True, 1, 1)
    assert conn.rooms == ["defaultRoom"]


async def test_roomleave_reply(core, conn):
    await feed(core.protocol, conn, {"event": "roomAdd", "room": "defaultRoom"})

    reply = await feed(
        core.protocol, conn, {"event": "roomLeave", "room": "defaultRoom", "messageId": 2}
    )

    assert reply == ok(True, 2, 2)
    assert conn.rooms == []
    assert await core.rooms.members("defaultRoom") == {}


async def test_roomview_reply(core, conn):
    other = core.connect("conn-2")
    await feed(core.protocol, conn, {"event": "roomAdd", "room": "defaultRoom"})
    await feed(core.protocol, other, {"event": "roomAdd", "room": "defaultRoom"})

    reply = await feed(
        core.protocol, conn, {"event": "roomView", "room": "defaultRoom", "messageId": 3}
    )

    assert reply == ok(
        {
            "room": "defaultRoom",
            "membersCount": 2,
            "members": {
                "conn-1": {"id": "conn-1", "joinedAt": NOW},
                "conn-2": {"id": "conn-2", "joinedAt": NOW},
            },
        },
        3,
        2,
    )


async def test_say_reply_has_no_data_and_the_sender_hears_it(core, conn):
    await feed(core.protocol, conn, {"event": "roomAdd", "room": "defaultRoom"})

    reply = await feed(
        core.protocol,
        conn,
        {"event": "say", "room": "defaultRoom", "message": "hi", "messageId": 5},
    )

    assert reply == {"status": "OK", "context": "response", "messageId": 5, "messageCount": 2}
    assert transport_of(conn).pushed() == [user_message("hi", "defaultRoom", "conn-1")]


async def test_say_object_message(core, conn):
    await feed(core.protocol, conn, {"event": "roomAdd", "room": "defaultRoom"})
    message = {"text": "hi", "nested": [1, {"a": None}]}

    reply = await feed(
        core.protocol, conn, {"event": "say", "room": "defaultRoom", "message": message}
    )

    assert reply["status"] == "OK"
    assert transport_of(conn).pushed() == [user_message(message, "defaultRoom", "conn-1")]


async def test_say_reaches_other_members_only_of_that_room(core, conn):
    member = core.connect("conn-2")
    outsider = core.connect("conn-3")
    await feed(core.protocol, conn, {"event": "roomAdd", "room": "defaultRoom"})
    await feed(core.protocol, member, {"event": "roomAdd", "room": "defaultRoom"})
    await feed(core.protocol, outsider, {"event": "roomAdd", "room": "other"})

    await feed(core.protocol, member, {"event": "say", "room": "defaultRoom", "message": "yo"})

    expected = [user_message("yo", "defaultRoom", "conn-2")]
    assert transport_of(conn).pushed() == expected
    assert transport_of(member).pushed() == expected
    assert transport_of(outsider).pushed() == []


async def test_quit_closes_with_4000_and_replies_nothing(core, conn):
    reply = await feed(core.protocol, conn, {"event": "quit", "messageId": 1})

    assert reply is None
    assert transport_of(conn).closes == [(4000, "connection destroyed")]
    assert transport_of(conn).frames == []


# -- PROTOCOL §3 error rows -----------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"action": "nope"},
        {"action": "echo", "apiVersion": 2},
        {"action": "versioned", "apiVersion": 1},
        {},
        {"action": None},
        {"action": ["echo"]},
        {"action": "../echo"},
        {"action": "actions/echo"},
        {"action": "__class__"},
        {"action": "__init__"},
        {"action": "echo\u0000"},
        {"action": "ECHO"},
    ],
)
async def test_action_unknown_action_or_version(core, conn, params):
    reply = await feed(core.protocol, conn, {"event": "action", "messageId": 1, "params": params})

    assert reply == action_reply({"error": "unknown action or invalid apiVersion"}, 1, 1)


@pytest.mark.parametrize(
    "frame",
    [
        {"event": "action"},
        {"event": "action", "params": "echo"},
        {"event": "action", "params": ["echo"]},
    ],
)
async def test_action_without_params_object_is_unknown(core, conn, frame):
    reply = await feed(core.protocol, conn, {**frame, "messageId": 1})

    assert reply == action_reply({"error": "unknown action or invalid apiVersion"}, 1, 1)


async def test_action_missing_required_input(core, conn):
    reply = await feed(
        core.protocol, conn, {"event": "action", "messageId": 1, "params": {"action": "needs"}}
    )

    assert reply == action_reply({"error": "n is a required parameter for this action"}, 1, 1)


async def test_action_validator_message(core, conn):
    frame = {"event": "action", "messageId": 1, "params": {"action": "needs", "n": "-4"}}

    assert await feed(core.protocol, conn, frame) == action_reply(
        {"error": "n must be positive"}, 1, 1
    )


async def test_action_validator_default_message(core, conn):
    frame = {"event": "action", "messageId": 1, "params": {"action": "strict", "n": 2}}

    assert await feed(core.protocol, conn, frame) == action_reply(
        {"error": 'Input for parameter "n" failed validation!'}, 1, 1
    )


async def test_action_formatter_failure(core, conn):
    frame = {"event": "action", "messageId": 1, "params": {"action": "needs", "n": "many"}}

    assert await feed(core.protocol, conn, frame) == action_reply(
        {"error": 'Input for parameter "n" failed validation!'}, 1, 1
    )


async def test_action_inputs_reach_the_reply_formatted(core, conn):
    frame = {"event": "action", "messageId": 1, "params": {"action": "needs", "n": "4"}}

    assert await feed(core.protocol, conn, frame) == action_reply({"action": "needs", "n": 4}, 1, 1)


async def test_action_exception_becomes_its_message(core, conn, caplog):
    frame = {"event": "action", "messageId": 1, "params": {"action": "boom"}}

    with caplog.at_level("ERROR", "squall.actions"):
        reply = await feed(core.protocol, conn, frame)

    assert reply == action_reply({"error": "the action broke"}, 1, 1)
    assert [r.getMessage()[:38] for r in caplog.records] == [
        "action boom failed (connection conn-1)"
    ]


async def test_action_too_many_pending(core, conn, probes):
    probes.expected = 5
    held = [
        start_feed(
            core.protocol, conn, {"event": "action", "messageId": i, "params": {"action": "slow"}}
        )
        for i in range(1, 6)
    ]
    await bounded(probes.all_waiting.wait())

    reply = await feed(
        core.protocol, conn, {"event": "action", "messageId": 6, "params": {"action": "echo"}}
    )

    assert reply == action_reply({"error": "you have too many pending requests"}, 6, 6)
    probes.release.set()
    replies = await bounded(asyncio.gather(*held))
    assert [r["messageId"] for r in replies] == [1, 2, 3, 4, 5]
    details = await feed(core.protocol, conn, {"event": "detailsView"})
    assert (details["data"]["totalActions"], details["data"]["pendingActions"]) == (6, 0)


# -- what one connection may have in flight, all verbs together: replies, not memory ---------


class Gate:
    """A join hook that holds every roomAdd until ``release`` (the slow Redis of the issue)."""

    def __init__(self, expected: int) -> None:
        self.release = asyncio.Event()
        self.all_waiting = asyncio.Event()
        self.expected = expected
        self.waiting = 0

    async def join(self, connection, room):
        self.waiting += 1
        if self.waiting >= self.expected:
            self.all_waiting.set()
        await self.release.wait()


async def gated_core(make_core, probes, gate, max_pending):
    rooms = [f"room{n}" for n in range(10)]
    return await make_core(
        actions=probes.actions(),
        rooms=rooms,
        chat_middleware=[ChatMiddleware("gate", join=gate.join)],
        max_pending=max_pending,
    )


async def test_verbs_in_flight_past_the_bound_are_refused_at_once(make_core, probes):
    gate = Gate(expected=3)
    core = await gated_core(make_core, probes, gate, max_pending=3)
    conn = core.connect("conn-1")
    held = [
        start_feed(core.protocol, conn, {"event": "roomAdd", "room": f"room{n}", "messageId": n})
        for n in range(3)
    ]
    await bounded(gate.all_waiting.wait())

    refused = [
        core.protocol.receive(conn, json.dumps({"event": verb, "messageId": 10 + n, **fields}))
        for n, (verb, fields) in enumerate(
            [
                ("roomView", {"room": "room0"}),
                ("roomAdd", {"room": "room5"}),
                ("roomLeave", {"room": "room0"}),
                ("say", {"room": "room0", "message": "hi"}),
                ("action", {"params": {"action": "echo"}}),
            ]
        )
    ]

    # answered at once, as dicts: nothing was started for them
    pending = "you have too many pending requests"
    assert refused == [failed(pending, 10 + n, 4 + n) for n in range(5)]
    assert conn.total_actions == 1  # §4: a refused action still counts
    # verbs answered at once are never refused
    assert (await feed(core.protocol, conn, {"event": "ping", "messageId": 20}))["status"] == "OK"
    gate.release.set()
    assert [r["status"] for r in await bounded(asyncio.gather(*held))] == ["OK"] * 3
    assert (await feed(core.protocol, conn, {"event": "roomView", "room": "room0"}))["data"][
        "membersCount"
    ] == 1


async def test_verbs_in_flight_bound_counts_actions_and_is_per_connection(make_core, probes):
    gate = Gate(expected=2)
    core = await gated_core(make_core, probes, gate, max_pending=3)
    conn, other = core.connect("conn-1"), core.connect("conn-2")
    probes.expected = 1
    slow = start_feed(
        core.protocol, conn, {"event": "action", "messageId": 1, "params": {"action": "slow"}}
    )
    held = [
        start_feed(core.protocol, conn, {"event": "roomAdd", "room": f"room{n}", "messageId": n})
        for n in (2, 3)
    ]
    await bounded(probes.all_waiting.wait())
    await bounded(gate.all_waiting.wait())

    reply = await feed(core.protocol, conn, {"event": "roomView", "room": "room2", "messageId": 4})
    assert reply["error"] == "you have too many pending requests"
    other_reply = await feed(
        core.protocol, other, {"event": "action", "messageId": 1, "params": {"action": "echo"}}
    )
    assert "error" not in other_reply
    probes.release.set()
    gate.release.set()
    await bounded(asyncio.gather(slow, *held))


async def test_forget_drops_the_count_of_a_closed_connection(core, conn):
    """A socket that closes may leave verbs that never started (their tasks cancelled before
    the first step, so nothing counted them down): ``forget`` drops its count for good."""
    core.protocol.max_pending = 2
    frame = json.dumps({"event": "roomView", "room": "defaultRoom"})
    for _ in range(2):
        core.protocol.receive(conn, frame).close()  # dropped unstarted
    assert core.protocol.receive(conn, frame)["error"] == "you have too many pending requests"

    core.protocol.forget(conn)

    later = core.protocol.receive(conn, frame)
    assert inspect.isawaitable(later)
    assert (await bounded(later))["error"] == "connection not in this room (defaultRoom)"


async def test_action_while_shutting_down(core, conn):
    assert await bounded(core.processor.drain(1000)) is True

    reply = await feed(
        core.protocol, conn, {"event": "action", "messageId": 1, "params": {"action": "echo"}}
    )

    assert reply == action_reply({"error": "the server is shutting down"}, 1, 1)


@pytest.mark.parametrize(
    "verb", ["nope", "Action", "ACTION", "roomadd", "__init__", "receive", "_action", "success"]
)
async def test_unknown_verb(core, conn, verb):
    reply = await feed(core.protocol, conn, {"event": verb, "messageId": 1})

    assert reply == failed(f"verb not found or not allowed ({verb})", 1, 1)


async def test_unknown_verb_text_is_configurable(make_core):
    core = await make_core(messages=ErrorMessages({"verbNotFound": "no {verb} here"}))

    reply = await feed(core.protocol, core.connect(), {"event": "dance", "messageId": 1})

    assert reply == failed("no dance here", 1, 1)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"room": "defaultRoom"},
        {"message": "hi"},
        {"room": "defaultRoom", "message": ""},
        {"room": "defaultRoom", "message": {}},
        {"room": "defaultRoom", "message": None},
        {"room": "defaultRoom", "message": 5},
        {"room": "defaultRoom", "message": ["hi"]},
        {"room": None, "message": "hi"},
        {"room": 5},
    ],
)
async def test_say_requires_room_and_message(core, conn, fields):
    await feed(core.protocol, conn, {"event": "roomAdd", "room": "defaultRoom"})

    reply = await feed(core.protocol, conn, {"event": "say", "messageId": 1, **fields})

    assert reply == failed("both room and message are required", 1, 2)
    assert transport_of(conn).frames == []


@pytest.mark.parametrize(
    "frame",
    [
        {"event": "roomAdd", "room": "nowhere"},
        {"event": "roomLeave", "room": "nowhere"},
        {"event": "roomView", "room": "nowhere"},
        {"event": "say", "room": "nowhere", "message": "hi"},
    ],
)
async def test_room_does_not_exist(core, conn, frame):
    reply = await feed(core.protocol, conn, {**frame, "messageId": 1})

    assert reply == failed("room does not exist", 1, 1)


async def test_roomadd_already_a_member(core, conn):
    await feed(core.protocol, conn, {"event": "roomAdd", "room": "defaultRoom"})

    reply = await feed(
        core.protocol, conn, {"event": "roomAdd", "room": "defaultRoom", "messageId": 2}
    )

    assert reply == failed("connection already in this room (defaultRoom)", 2, 2)
    assert conn.rooms == ["defaultRoom"]


@pytest.mark.parametrize(
    "frame",
    [
        {"event": "roomLeave", "room": "defaultRoom"},
        {"event": "roomView", "room": "defaultRoom"},
        {"event": "say", "room": "defaultRoom", "message": "hi"},
    ],
)
async def test_not_a_member(core, conn, frame):
    reply = await feed(core.protocol, conn, {**frame, "messageId": 1})

    assert reply == failed("connection not in this room (defaultRoom)", 1, 1)


BAD_ROOM_NAMES = [None, "", 5, ["defaultRoom"], "x" * 129, "nul\x00", "line\nfeed", "\x1b[31m"]


@pytest.mark.parametrize("verb", ["roomAdd", "roomLeave", "roomView"])
@pytest.mark.parametrize("room", BAD_ROOM_NAMES)
async def test_room_verbs_with_an_invalid_room_name(core, conn, verb, room):
    """PROTOCOL §3, §5: empty, absent, not a string, too long or with control characters."""
    frame = {"event": verb, "messageId": 1}
    if room is not None:
        frame["room"] = room

    assert await feed(core.protocol, conn, frame) == failed("invalid room name", 1, 1)
    assert conn.rooms == []


@pytest.mark.parametrize("room", BAD_ROOM_NAMES[1:])
async def test_say_with_a_present_invalid_room_name(core, conn, room):
    frame = {"event": "say", "messageId": 1, "room": room, "message": "hi"}

    assert await feed(core.protocol, conn, frame) == failed("invalid room name", 1, 1)


async def test_room_name_of_the_maximum_length_is_a_name(core, conn):
    frame = {"event": "roomAdd", "messageId": 1, "room": "x" * 128}

    assert await feed(core.protocol, conn, frame) == failed("room does not exist", 1, 1)


async def test_join_blocked_by_middleware(make_core):
    def members_only(connection, room):
        if room == "vip":
            raise PermissionError("vip members only")

    core = await make_core(
        rooms=["vip"], chat_middleware=[ChatMiddleware("vip", join=members_only)]
    )
    conn = core.connect()

    reply = await feed(core.protocol, conn, {"event": "roomAdd", "room": "vip", "messageId": 1})

    assert reply == failed("vip members only", 1, 1)
    assert conn.rooms == []
    assert await core.rooms.members("vip") == {}


async def test_leave_blocked_by_middleware(make_core):
    async def stay(connection, room):
        raise PermissionError("you cannot leave")

    core = await make_core(chat_middleware=[ChatMiddleware("stay", leave=stay)])
    conn = core.connect("conn-1")
    await feed(core.protocol, conn, {"event": "roomAdd", "room": "defaultRoom"})

    reply = await feed(
        core.protocol, conn, {"event": "roomLeave", "room": "defaultRoom", "messageId": 2}
    )

    assert reply == failed("you cannot leave", 2, 2)
    assert conn.rooms == ["defaultRoom"]
    assert list(await core.rooms.members("defaultRoom")) == ["conn-1"]


async def test_say_blocked_by_middleware(make_core):
    def no_shouting(connection, room, payload):
        if payload["message"].isupper():
            raise Forbidden("no shouting")
        return payload

    core = await make_core(chat_middleware=[ChatMiddleware("calm", on_say_receive=no_shouting)])
    conn = core.connect()
    await feed(core.protocol, conn, {"event": "roomAdd", "room": "defaultRoom"})

    reply = await feed(
        core.protocol,
        conn,
        {"event": "say", "room": "defaultRoom", "message": "HEY", "messageId": 2},
    )

    assert reply == failed("no shouting", 2, 2)
    assert transport_of(conn).frames == []


async def test_room_error_texts_are_configurable(make_core):
    messages = ErrorMessages(
        {
            "roomNotExist": "no such room",
            "connectionNotInRoom": "join {room} first",
            "connectionAlreadyInRoom": "already in {room}",
            "sayRequiresRoomAndMessage": "room+message please",
        }
    )
    core = await make_core(messages=messages)
    conn = core.connect()

    missing = await feed(core.protocol, conn, {"event": "roomAdd", "room": "x", "messageId": 1})
    outside = await feed(
        core.protocol, conn, {"event": "roomView", "room": "defaultRoom", "messageId": 2}
    )
    await feed(core.protocol, conn, {"event": "roomAdd", "room": "defaultRoom"})
    twice = await feed(
        core.protocol, conn, {"event": "roomAdd", "room": "defaultRoom", "messageId": 4}
    )
    empty = await feed(core.protocol, conn, {"event": "say", "room": "defaultRoom", "messageId": 5})

    assert missing == failed("no such room", 1, 1)
    assert outside == failed("join defaultRoom first", 2, 2)
    assert twice == failed("already in defaultRoom", 4, 4)
    assert empty == failed("room+message please", 5, 5)


# -- chat middleware that fails: a bug, not a refusal ----------------------------------------


def exploding(raised: BaseException):
    def hook(*args):
        raise raised

    return hook


@pytest.mark.parametrize(
    ("hook", "frames"),
    [
        ("join", [{"event": "roomAdd", "room": "defaultRoom"}]),
        (
            "leave",
            [{"event": "roomAdd", "room": "other"}, {"event": "roomLeave", "room": "other"}],
        ),
        (
            "on_say_receive",
            [
                {"event": "roomAdd", "room": "other"},
                {"event": "say", "room": "other", "message": "hi"},
            ],
        ),
    ],
)
async def test_chat_hook_bug_is_logged_and_hidden_when_not_exposed(make_core, caplog, hook, frames):
    chat = ChatMiddleware("buggy", **{hook: exploding(RuntimeError("redis://:pw@10.0.0.7"))})
    core = await make_core(
        chat_middleware=[chat],
        rooms=["defaultRoom", "other"],
        messages=ErrorMessages({}, expose_errors=False),
    )
    conn = core.connect("conn-1")
    with caplog.at_level(logging.ERROR, "squall.protocol"):
        for frame in frames[:-1]:
            assert (await feed(core.protocol, conn, frame))["status"] == "OK"
        reply = await feed(core.protocol, conn, {**frames[-1], "messageId": 9})

    ref = re.fullmatch(r"internal error \(ref ([0-9a-f]{12})\)", reply["error"])
    assert ref, reply
    (record,) = caplog.records
    verb = frames[-1]["event"]
    assert record.getMessage() == f"{verb} failed (connection conn-1) (ref {ref.group(1)})"
    assert record.exc_info[0] is RuntimeError
    assert "pw@" not in json.dumps(reply)


async def test_chat_hook_bug_shows_its_text_when_exposed(make_core, caplog):
    core = await make_core(
        chat_middleware=[ChatMiddleware("buggy", join=exploding(KeyError("team")))]
    )
    with caplog.at_level(logging.ERROR, "squall.protocol"):
        reply = await feed(
            core.protocol, core.connect(), {"event": "roomAdd", "room": "defaultRoom"}
        )

    assert reply["error"] == "'team'"
    assert caplog.records[0].exc_info[0] is KeyError


@pytest.mark.parametrize("raised", [SystemExit(3), KeyboardInterrupt()])
async def test_chat_hook_raising_outside_exception_is_an_error_reply(make_core, caplog, raised):
    core = await make_core(chat_middleware=[ChatMiddleware("exits", join=exploding(raised))])
    conn = core.connect()
    with caplog.at_level(logging.ERROR, "squall.protocol"):
        reply = await feed(core.protocol, conn, {"event": "roomAdd", "room": "defaultRoom"})

    assert reply["error"] == (str(raised) or type(raised).__name__)
    assert conn.rooms == []
    assert caplog.records[0].exc_info[0] is type(raised)


async def test_chat_hook_refusing_on_purpose_is_not_logged(make_core, caplog):
    core = await make_core(
        chat_middleware=[
            ChatMiddleware("team", join=exploding(Forbidden("members of team red only")))
        ],
        messages=ErrorMessages({}, expose_errors=False),
    )
    with caplog.at_level(logging.DEBUG, "squall"):
        reply = await feed(
            core.protocol, core.connect(), {"event": "roomAdd", "room": "defaultRoom"}
        )

    assert reply["error"] == "members of team red only"
    assert caplog.records == []


# -- params and concurrency -------------------------------------------------------------------


async def test_action_params_are_not_sticky(core, conn):
    first = await feed(
        core.protocol,
        conn,
        {"event": "action", "messageId": 1, "params": {"action": "echo", "a": 1}},
    )
    second = await feed(
        core.protocol,
        conn,
        {"event": "action", "messageId": 2, "params": {"action": "echo", "b": 2}},
    )

    assert first == action_reply({"action": "echo", "a": 1}, 1, 1)
    assert second == action_reply({"action": "echo", "b": 2}, 2, 2)


async def test_action_params_survive_an_unknown_action_between(core, conn):
    await feed(core.protocol, conn, {"event": "action", "params": {"action": "nope", "secret": 1}})

    reply = await feed(
        core.protocol, conn, {"event": "action", "messageId": 2, "params": {"action": "echo"}}
    )

    assert reply == action_reply({"action": "echo"}, 2, 2)


async def test_concurrent_actions_finish_out_of_order(core, conn, probes):
    slow = start_feed(
        core.protocol,
        conn,
        {"event": "action", "messageId": "slow", "params": {"action": "slow", "x": 1}},
    )
    await bounded(probes.all_waiting.wait())

    fast = await feed(
        core.protocol,
        conn,
        {"event": "action", "messageId": "fast", "params": {"action": "echo", "x": 2}},
    )
    ping = await feed(core.protocol, conn, {"event": "ping", "messageId": "ping"})

    assert fast == action_reply({"action": "echo", "x": 2}, "fast", 2)
    assert ping["messageCount"] == 3
    assert not slow.done()
    probes.release.set()
    assert await bounded(slow) == action_reply({"action": "slow", "x": 1}, "slow", 1)


async def test_concurrent_actions_never_share_params(core, conn, probes):
    probes.expected = 2
    first = start_feed(
        core.protocol,
        conn,
        {"event": "action", "messageId": 1, "params": {"action": "slow", "who": "a"}},
    )
    second = start_feed(
        core.protocol,
        conn,
        {"event": "action", "messageId": 2, "params": {"action": "slow", "mine": True}},
    )
    await bounded(probes.all_waiting.wait())
    probes.release.set()

    assert await bounded(first) == action_reply({"action": "slow", "who": "a"}, 1, 1)
    assert await bounded(second) == action_reply({"action": "slow", "mine": True}, 2, 2)


async def test_receive_answers_simple_verbs_at_once(core, conn):
    for verb in ("ping", "detailsView", "documentation", "nope"):
        reply = core.protocol.receive(conn, f'{{"event": "{verb}"}}')
        assert isinstance(reply, dict), verb


# -- rate limit (servers.websocket.server.rateLimit) ------------------------------------------

NEVER_REFILLS = 1e-9  # tokens a second: nothing comes back within a test


async def test_rate_limit_off_by_default(core, conn):
    for number in range(1, 301):
        reply = await feed(core.protocol, conn, {"event": "ping", "messageId": number})
        assert reply["status"] == "OK"


async def test_rate_limit_refuses_beyond_the_burst(make_core):
    core = await make_core(rate_limit=NEVER_REFILLS, rate_burst=3)
    conn = core.connect()

    admitted = [
        await feed(core.protocol, conn, {"event": "ping", "messageId": n}) for n in (1, 2, 3)
    ]
    refused = await feed(core.protocol, conn, {"event": "ping", "messageId": 4})
    action = await feed(
        core.protocol, conn, {"event": "action", "messageId": 5, "params": {"action": "echo"}}
    )

    assert [reply["status"] for reply in admitted] == ["OK", "OK", "OK"]
    assert refused == failed("too many messages; slow down", 4, 4)
    assert action == failed("too many messages; slow down", 5, 5)
    assert conn.total_actions == 0


async def test_rate_limit_is_per_connection(make_core):
    core = await make_core(rate_limit=NEVER_REFILLS, rate_burst=1)
    first, second = core.connect(), core.connect()

    await feed(core.protocol, first, {"event": "ping"})

    assert (await feed(core.protocol, first, {"event": "ping"}))["status"] == (
        "too many messages; slow down"
    )
    assert (await feed(core.protocol, second, {"event": "ping"}))["status"] == "OK"


async def test_rate_limit_refills_with_time(make_core):
    core = await make_core(rate_limit=2, rate_burst=5)
    conn = core.connect()
    for _ in range(5):
        await feed(core.protocol, conn, {"event": "ping"})
    assert (await feed(core.protocol, conn, {"event": "ping"}))["status"] != "OK"

    conn.rate_bucket[1] -= 1.0  # as if one second had passed: 2 tokens come back

    statuses = [(await feed(core.protocol, conn, {"event": "ping"}))["status"] for _ in range(3)]
    assert statuses == ["OK", "OK", "too many messages; slow down"]


async def test_rate_limit_never_saves_more_than_the_burst(make_core):
    core = await make_core(rate_limit=0.01, rate_burst=2)  # one token per 100 s
    conn = core.connect()
    await feed(core.protocol, conn, {"event": "ping"})

    conn.rate_bucket[1] -= 1_000_000.0  # idle for days: still only rate_burst tokens saved

    statuses = [(await feed(core.protocol, conn, {"event": "ping"}))["status"] for _ in range(3)]
    assert statuses == ["OK", "OK", "too many messages; slow down"]


async def test_rate_limit_text_is_configurable(make_core):
    messages = ErrorMessages({"rateLimited": "easy now"})
    core = await make_core(rate_limit=NEVER_REFILLS, rate_burst=1, messages=messages)
    conn = core.connect()
    await feed(core.protocol, conn, {"event": "ping"})

    assert await feed(core.protocol, conn, {"event": "ping", "messageId": 2}) == failed(
        "easy now", 2, 2
    )


async def test_detailsview_counts_an_action_in_flight(core, conn, probes):
    slow = start_feed(
        core.protocol, conn, {"event": "action", "messageId": 1, "params": {"action": "slow"}}
    )
    await bounded(probes.all_waiting.wait())

    during = await feed(core.protocol, conn, {"event": "detailsView", "messageId": 2})
    probes.release.set()
    await bounded(slow)
    after = await feed(core.protocol, conn, {"event": "detailsView", "messageId": 3})

    assert (during["data"]["totalActions"], during["data"]["pendingActions"]) == (1, 1)
    assert (after["data"]["totalActions"], after["data"]["pendingActions"]) == (1, 0)


async def test_reply_of_a_closed_connection_is_still_returned_for_the_transport(core, conn, probes):
    """The protocol answers; dropping the frame of a gone client is the connection's job."""
    slow = start_feed(
        core.protocol, conn, {"event": "action", "messageId": 1, "params": {"action": "slow"}}
    )
    await bounded(probes.all_waiting.wait())
    conn.closed = True
    probes.release.set()

    reply = await bounded(slow)
    conn.send(reply)

    assert reply == action_reply({"action": "slow"}, 1, 1)
    assert transport_of(conn).frames == []
    assert conn.pending_actions == 0


@pytest.mark.parametrize(
    ("frame", "shown"),
    [
        ({}, "null"),
        ({"event": None}, "null"),
        ({"event": 5}, "5"),
        ({"event": True}, "true"),
        ({"event": ["action"]}, '["action"]'),
        ({"event": {"verb": "ping"}}, '{"verb":"ping"}'),
    ],
)
async def test_unknown_verb_not_a_string_is_named_as_json(core, conn, frame, shown):
    reply = await feed(core.protocol, conn, {**frame, "messageId": 1})

    assert reply == failed(f"verb not found or not allowed ({shown})", 1, 1)
