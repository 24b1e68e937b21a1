"""Test-only actions and middleware for app mistakes and errors: actions that exit or await a
cancelled future, errors raised on purpose and by accident, a buggy validator, and a join hook
that holds joins until a test opens its gate.

Hooks only act on names the tests choose, so the shared servers stay usable by other tests.
"""

import asyncio
import sys

import squall
from squall import ChatMiddleware, ConnectionMiddleware, Input, action


@action(name="hostileExit", description="A plain def calling sys.exit(2), as argparse does")
def hostile_exit(data):
    sys.exit(2)


@action(name="hostileAwaitsCancelled", description="Await a future someone else cancelled")
async def hostile_awaits_cancelled(data):
    future = asyncio.get_running_loop().create_future()
    future.cancel()
    await future


@action(
    name="hostileLeak",
    description="Fail with a message a client must not read in production",
)
async def hostile_leak(data):
    raise RuntimeError("cannot reach postgres://admin:hunter2@10.0.0.5/app")


@action(
    name="hostileKind",
    description="Raise the error kind named by `kind` (an ActionError, or a PermissionError)",
    inputs={"kind": Input(required=True), "status": Input(formatter=int)},
)
async def hostile_kind(data):
    kind = data.params["kind"]
    if kind == "PermissionError":
        raise PermissionError("members only")
    if kind == "ActionError":
        raise squall.ActionError("paid already", status=data.params.get("status", 400))
    raise getattr(squall, kind)(f"{kind} on purpose")


def _buggy_validator(value):
    return {}["no such key"]  # the bug under test: an app error inside a validator


@action(
    name="hostileBuggyValidator",
    description="A validator with a bug: a 500, never a 422",
    inputs={"n": Input(required=True, validator=_buggy_validator)},
)
async def hostile_buggy_validator(data):
    return {"n": data.params["n"]}


#: Rooms named ``hostile-gate-*``: joins wait until a test opens the room's gate.
GATES: dict[str, asyncio.Event] = {}


@action(
    name="hostileOpenGate",
    description="Let the joins held at a hostile-gate-* room through",
    inputs={"room": Input(required=True)},
)
async def hostile_open_gate(data):
    GATES.setdefault(data.params["room"], asyncio.Event()).set()
    return {"opened": data.params["room"]}


async def _held_join(connection, room):
    if room.startswith("hostile-gate-"):
        await GATES.setdefault(room, asyncio.Event()).wait()


def _leaky_join(connection, room):
    if room == "hostile-leaky-join":
        raise RuntimeError("join hook cannot reach redis://:s3cret@10.0.0.7")
    if room == "hostile-forbidden-join":
        raise squall.Forbidden("team red only")


gate = ChatMiddleware(name="hostileGate", join=_held_join)
leaky_chat = ChatMiddleware(name="hostileLeakyChat", join=_leaky_join)


def _leaky_create(connection):
    if connection.fingerprint.startswith("leaky-create"):
        raise RuntimeError("create hook cannot reach ldap://cn=admin:pw@10.0.0.9")


leaky_connection = ConnectionMiddleware(name="hostileLeakyConnection", create=_leaky_create)


@action(name="hostileQuickThread", description="A plain def that answers at once")
def hostile_quick_thread(data):
    return {"quick": True}
