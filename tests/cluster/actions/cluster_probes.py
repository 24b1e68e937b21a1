"""Test-only actions for the cluster tier (loaded through general.paths.actions): server code
pushing to one connection, to a room and to everyone, destroying a room and making one with a
history, on any server; a connection middleware that holds ``slowcreate-*`` sockets, and a chat
middleware that holds leaves of ``slowleave-*`` rooms until told."""

import asyncio
import contextlib

from squall import ChatMiddleware, ConnectionMiddleware, Input, action


@action(
    name="sendToTest",
    description="connection.send by id: push `message` to connection `to`, held by any server",
    inputs={"to": Input(required=True), "message": Input(required=True)},
)
async def send_to_test(data):
    pushed = {"context": "alert", "message": data.params["message"], "by": data.app.id}
    return {"delivered": await data.app.send_to(data.params["to"], pushed)}


@action(
    name="sendAllTest",
    description="Push `message` to every connection of every server",
    inputs={"message": Input(required=True)},
)
async def send_all_test(data):
    await data.app.send_all({"context": "alert", "message": data.params["message"]})
    return {"sent": True}


@action(
    name="broadcastTest",
    description="Say `message` in `room` from server code",
    inputs={"room": Input(required=True), "message": Input(required=True)},
)
async def broadcast_test(data):
    await data.app.rooms.broadcast(data.params["room"], data.params["message"])
    return {"said": True}


# -- a slow create middleware, for sockets opened with ?sessionID=slowcreate-* -------------------

#: fingerprint -> {"id": connection id, "finished": create returned}
slow_creates: dict = {}


async def _slow_create(connection):
    """Hold a ``slowcreate-*`` socket in ``create`` until its peer has gone away."""
    if not connection.fingerprint.startswith("slowcreate-"):
        return
    seen = slow_creates[connection.fingerprint] = {"id": connection.id, "finished": False}
    for _ in range(500):  # at most 5 s
        if connection.closed:
            break
        await asyncio.sleep(0.01)  # poll: a server has no event for "the peer left"
    seen["finished"] = True


slow_create = ConnectionMiddleware(name="slowCreate", create=_slow_create)


# -- a slow leave middleware, for rooms named slowleave-* ------------------------------------------

#: room -> opened by releaseLeaveTest: the leaves of that room may go on
leave_gates: dict[str, asyncio.Event] = {}


async def _slow_leave(connection, room):
    """Hold a leave of a ``slowleave-*`` room until ``releaseLeaveTest`` (at most 5 s)."""
    if room.startswith("slowleave-"):
        gate = leave_gates.setdefault(room, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gate.wait(), 5)


slow_leave = ChatMiddleware(name="slowLeave", leave=_slow_leave)


@action(
    name="releaseLeaveTest",
    description="Let the leaves of a slowleave-* room held by the slow leave middleware go on",
    inputs={"room": Input(required=True, formatter=str)},
)
async def release_leave_test(data):
    leave_gates.setdefault(data.params["room"], asyncio.Event()).set()
    return {"released": True}


@action(
    name="slowCreateProbe",
    description="What the slow create middleware saw of the socket with this fingerprint",
    inputs={"fingerprint": Input(required=True, formatter=str)},
)
async def slow_create_probe(data):
    return slow_creates.get(data.params["fingerprint"], {"id": None, "finished": False})


@action(
    name="historyRoomTest",
    description="Create room `name` keeping `size` messages, as server code may (no client bound)",
    inputs={"name": Input(required=True, formatter=str), "size": Input(required=True)},
)
async def history_room_test(data):
    options = {"history": {"size": data.params["size"]}}
    return {"didCreate": await data.app.rooms.add(data.params["name"], options)}
