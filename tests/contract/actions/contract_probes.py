"""Actions and middleware the contract tier loads (``general.paths.actions``): each gives the
outside a handle on one statement of PROTOCOL.md that only server code can exercise. Chat
middleware acts only in rooms named ``cmw-...`` and connection middleware only on the
fingerprint ``refuse-me``, so every other test meets plain Squall."""

import asyncio
import os

from squall import (
    ActionError,
    BadRequest,
    ChatMiddleware,
    Conflict,
    ConnectionMiddleware,
    Forbidden,
    Input,
    InvalidParams,
    NotFound,
    TooManyRequests,
    Unauthorized,
    action,
)

#: What ``contractRaise`` raises, by the name a test sends.
RAISED = {
    "ActionError": lambda: ActionError("plain action error"),
    "ActionError418": lambda: ActionError("a teapot", status=418),
    "BadRequest": lambda: BadRequest("bad request on purpose"),
    "Unauthorized": lambda: Unauthorized("unauthorized on purpose"),
    "Forbidden": lambda: Forbidden("forbidden on purpose"),
    "NotFound": lambda: NotFound("not found on purpose"),
    "Conflict": lambda: Conflict("conflict on purpose"),
    "InvalidParams": lambda: InvalidParams("invalid on purpose"),
    "TooManyRequests": lambda: TooManyRequests("too many on purpose"),
    "PermissionError": lambda: PermissionError("permission denied on purpose"),
    "RuntimeError": lambda: RuntimeError("a bug on purpose"),
    "SystemExit": lambda: SystemExit("exit on purpose"),
    "CancelledError": lambda: asyncio.CancelledError("cancelled on purpose"),
}


@action(
    name="contractRaise",
    description="Raise the exception named by `kind` (PROTOCOL.md §2.3, §3)",
    inputs={"kind": Input(required=True)},
)
async def contract_raise(data):
    raise RAISED[data.params["kind"]]()


def _refuse_bad(value):
    return value != "bad"


def _explain_bad(value):
    return "told must not be bad" if value == "bad" else None


@action(
    name="contractInputs",
    description="A required input and two validated ones (PROTOCOL.md §3)",
    inputs={
        "needed": Input(required=True),
        "plain": Input(validator=_refuse_bad),
        "told": Input(validator=_explain_bad),
    },
)
async def contract_inputs(data):
    return {"got": {k: v for k, v in data.params.items() if k != "action"}}


@action(name="contractWhoAmI", description="The caller's connection as server code sees it")
async def contract_who_am_i(data):
    connection = data.connection
    return {"id": connection.id, "type": connection.type, "fingerprint": connection.fingerprint}


@action(
    name="contractSession",
    description="Merge `set` into the caller's session (if given) and return the session",
    inputs={"set": Input()},
)
async def contract_session(data):
    if "set" in data.params:
        data.connection.session.update(data.params["set"])
    return {"session": dict(data.connection.session)}


@action(name="contractSessionNotJson", description="Store a value JSON cannot hold")
async def contract_session_not_json(data):
    data.connection.session["notJson"] = {1, 2, 3}
    return {}


@action(
    name="contractRoomsApi",
    description="The server API on rooms: `op` is add, destroy, exists or list",
    inputs={"op": Input(required=True), "name": Input(), "options": Input()},
)
async def contract_rooms_api(data):
    rooms, op, name = data.app.rooms, data.params["op"], data.params.get("name")
    if op == "add":
        return {"result": await rooms.add(name, data.params.get("options"))}
    if op == "destroy":
        return {"result": await rooms.destroy(name)}
    if op == "exists":
        return {"result": await rooms.exists(name)}
    return {"result": sorted(await rooms.list())}


def _record(line):
    """Append a line to the event log the test reads (SQUALL_TEST_EVENT_LOG)."""
    with open(os.environ["SQUALL_TEST_EVENT_LOG"], "a") as log:
        log.write(line + "\n")


def _join(connection, room):
    if not room.startswith("cmw-"):
        return None
    _record(f"join {room} {connection.id}")
    if room.startswith("cmw-refuse"):
        raise Forbidden("joining this room is refused")
    if room.startswith("cmw-greet"):
        connection.send({"context": "alert", "greeting": room})
    if room.startswith("cmw-info"):
        return {"name": connection.session.get("name", "anonymous")}
    return None


def _leave(connection, room):
    if not room.startswith("cmw-"):
        return
    if room.startswith("cmw-sticky"):
        raise Forbidden("leaving this room is refused")
    _record(f"leave {room} {connection.id}")


def _on_say_receive(connection, room, payload):
    if not room.startswith("cmw-say"):
        return payload
    _record(f"receive {room} {payload['message']}")
    if payload["message"] == "drop":
        return None
    if payload["message"] == "refuse":
        raise Forbidden("saying that is refused")
    return payload


def _say(connection, room, payload):
    if not room.startswith("cmw-say"):
        return payload
    if payload["message"] == "not for the sender" and connection.id == payload["from"]:
        return None
    return {**payload, "to": connection.id}


contract_chat = ChatMiddleware(
    name="contractChat", join=_join, leave=_leave, on_say_receive=_on_say_receive, say=_say
)


def _tag(tag):
    def on_say_receive(connection, room, payload):
        if not room.startswith("cmw-order"):
            return payload
        return {**payload, "message": f"{payload['message']}|{tag}"}

    return on_say_receive


# Declared out of order on purpose: priority, not declaration order, decides who runs first.
contract_late = ChatMiddleware(name="contractLate", on_say_receive=_tag("late"), priority=150)
contract_default = ChatMiddleware(name="contractDefault", on_say_receive=_tag("default"))
contract_early = ChatMiddleware(name="contractEarly", on_say_receive=_tag("early"), priority=50)


def _create(connection):
    if connection.fingerprint == "refuse-me":
        raise Forbidden("this connection is refused")


contract_connection = ConnectionMiddleware(name="contractConnection", create=_create)


@action(name="contractVersion", version=1, description="Version one of two")
async def contract_version_1(data):
    return {"version": 1}


@action(name="contractVersion", version=2, description="Version two of two")
async def contract_version_2(data):
    return {"version": 2}


@action(
    name="contractParams",
    description="Say which of a and b it saw, after `delay` ms",
    inputs={"a": Input(), "b": Input(), "delay": Input(default=0, formatter=int)},
)
async def contract_params(data):
    await asyncio.sleep(data.params["delay"] / 1000)  # the behaviour under test: a slow action
    return {"seen": {key: data.params[key] for key in ("a", "b") if key in data.params}}
