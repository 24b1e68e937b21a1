"""Test-only actions and middleware for the hostile tier (loaded through general.paths.actions).

Each one plays one fault a real application can have: an action that raises, hangs, blocks
the loop or returns what JSON cannot hold; middleware that raises. Middleware that applies to
every connection or room only misbehaves for names the tests choose, so shared servers stay
usable by the other tests.
"""

import asyncio
import time

from squall import ActionMiddleware, ChatMiddleware, ConnectionMiddleware, Input, action


@action(name="hostileRaise", description="Raise an exception with a known message")
async def hostile_raise(data):
    raise RuntimeError("hostile action failed on purpose")


@action(name="hostileHang", description="Never finish (only general.actionTimeout ends it)")
async def hostile_hang(data):
    await asyncio.Event().wait()


@action(name="hostileHangThread", description="A plain def that never finishes in time")
def hostile_hang_thread(data):
    time.sleep(3)  # the behaviour under test: a blocking action past actionTimeout
    return {"finished": True}


@action(
    name="hostileBlock",
    description="Block the event loop (time.sleep inside async def): the watchdog must name it",
    inputs={"seconds": Input(default=2.0, formatter=float)},
)
async def hostile_block(data):
    time.sleep(data.params["seconds"])  # the bug under test: a blocking call on the loop
    return {"blocked": data.params["seconds"]}


@action(name="hostileCircular", description="Return a reply that refers to itself")
async def hostile_circular(data):
    reply = {"name": "circular"}
    reply["self"] = reply
    return reply


@action(name="hostileTupleKey", description="Return a reply whose key JSON cannot hold")
async def hostile_tuple_key(data):
    return {(1, 2): "a tuple key"}


@action(
    name="hostileBlast",
    description="Broadcast `count` messages of `size` bytes to `room` from server code",
    inputs={
        "room": Input(required=True),
        "count": Input(required=True, formatter=int),
        "size": Input(required=True, formatter=int),
    },
)
async def hostile_blast(data):
    pad = "x" * data.params["size"]
    for index in range(data.params["count"]):
        await data.app.rooms.broadcast(data.params["room"], {"index": index, "pad": pad})
        await asyncio.sleep(0)  # let the loop write to the sockets between messages
    return {"sent": data.params["count"]}


def _explode_pre(data):
    raise RuntimeError("pre middleware exploded")


def _explode_post(data):
    raise RuntimeError("post middleware exploded")


exploding_pre = ActionMiddleware(name="hostileExplodingPre", pre=_explode_pre, is_global=False)
exploding_post = ActionMiddleware(name="hostileExplodingPost", post=_explode_post, is_global=False)


@action(name="hostilePreMiddleware", middleware=["hostileExplodingPre"])
async def hostile_pre_middleware(data):
    return {"ran": True}


@action(name="hostilePostMiddleware", middleware=["hostileExplodingPost"])
async def hostile_post_middleware(data):
    return {"ran": True}


def _join(connection, room):
    if room == "hostile-join-explodes":
        raise RuntimeError("join middleware exploded")


def _on_say_receive(connection, room, payload):
    if payload.get("message") == "explode on receive":
        raise RuntimeError("say middleware exploded")
    return payload


def _say(connection, room, payload):
    if connection.fingerprint.startswith("explode-on-say"):
        raise RuntimeError("per-recipient say middleware exploded")
    return payload


exploding_chat = ChatMiddleware(
    name="hostileExplodingChat", join=_join, on_say_receive=_on_say_receive, say=_say
)


def _create(connection):
    if connection.fingerprint.startswith("refuse-me"):
        raise RuntimeError("connection middleware refused you")


def _destroy(connection):
    if connection.fingerprint.startswith("destroy-explodes"):
        raise RuntimeError("destroy middleware exploded")


exploding_connection = ConnectionMiddleware(
    name="hostileExplodingConnection", create=_create, destroy=_destroy
)
