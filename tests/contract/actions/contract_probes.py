"""Actions and middleware the contract tier loads (``general.paths.actions``) besides those of
tests/probes and tests/integration/actions: each gives the outside a handle on one statement of
PROTOCOL.md that only server code can exercise. Chat middleware acts only in rooms named
``cmw-...``, so every other test meets plain Squall."""

import asyncio
import os

from squall import (
    ActionError,
    BadRequest,
    ChatMiddleware,
    Conflict,
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
    "KeyboardInterrupt": lambda: KeyboardInterrupt("interrupted on purpose"),
    "GeneratorExit": lambda: GeneratorExit("generator exit on purpose"),
}


@action(
    name="contractRaise",
    description="Raise the exception named by `kind` (PROTOCOL.md §2.3, §3)",
    inputs={"kind": Input(required=True)},
)
async def contract_raise(data):
    raise RAISED[data.params["kind"]]()


@action(
    name="contractAnswerError",
    description="Answer with `error` set to the `error` param (null when absent), as ActionHero "
    "actions set data.response.error (PROTOCOL.md §2.3)",
    inputs={"error": Input()},
)
async def contract_answer_error(data):
    return {"error": data.params.get("error"), "answered": True}


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
    if room.startswith("cmw-greet"):  # connection.send from middleware (PROTOCOL.md §4)
        connection.send({"context": "alert", "greeting": room})


def _on_say_receive(connection, room, payload):
    if room.startswith("cmw-say"):  # how often it runs per message (PROTOCOL.md §5)
        _record(f"receive {room} {payload['message']}")
    return payload


def _say(connection, room, payload):
    mine = connection.id == payload["from"]
    if room.startswith("cmw-say") and payload["message"] == "not for the sender" and mine:
        return None  # this recipient's copy only (PROTOCOL.md §5)
    return payload


contract_chat = ChatMiddleware(
    name="contractChat", join=_join, on_say_receive=_on_say_receive, say=_say
)
