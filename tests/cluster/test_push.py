"""Pushes from server code reach connections held by any server: ``connection.send`` by id, a room
broadcast, and a push to every connection."""

from __future__ import annotations

from testkit import TIMEOUT, eventually, now_ms, unique
from websockets.asyncio.client import connect as websockets_connect


def alert(message: object, by: str) -> dict:
    return {"context": "alert", "message": message, "by": by}


def reply(fields: dict, message_id: int, count: int) -> dict:
    return {**fields, "context": "response", "messageId": message_id, "messageCount": count}


async def test_send_by_id_reaches_a_connection_of_another_server(cluster, connect):
    a, b, c = cluster
    a1, a2, b1, c1 = [await connect(server) for server in (a, a, b, c)]

    sent = await a1.action("sendToTest", to=b1.id, message={"hello": "b1"})
    assert sent == reply({"delivered": True}, 2, 2)
    await a1.action("sendToTest", to=b1.id, message="fence")  # after the first, by the same a
    assert await b1.next(lambda f: f.get("message") == "fence") == alert("fence", a.id)
    assert b1.take(lambda f: f.get("context") == "alert") == [alert({"hello": "b1"}, a.id)]

    # over HTTP on c, to a connection of a; and to a connection of the server itself
    assert (await c.action("sendToTest", to=a1.id, message="over http"))["delivered"] is True
    assert await a1.next(lambda f: f.get("message") == "over http") == alert("over http", c.id)
    assert (await a1.action("sendToTest", to=a2.id, message="local"))["delivered"] is True
    assert await a2.next(lambda f: f.get("message") == "local") == alert("local", a.id)
    for member in (a1, a2, b1, c1):
        assert [f for f in member.inbox if f.get("context") != "response"] == [], member


async def test_send_by_id_to_a_connection_no_server_holds_is_not_delivered(cluster, connect):
    a, b, _ = cluster
    a1 = await connect(a)
    # the Broker contract (squall/broker.py): send_to is False when no server holds it
    sent = await a1.action("sendToTest", to="no-such-connection", message="nobody")
    assert sent["delivered"] is False, sent

    # A connection is held until its server reads its close, however long its cleanup takes
    # (here a leave middleware holds it until released).
    room = unique("slowleave")
    assert (await a.action("createChatRoom", name=room))["didCreate"] is True
    gone = await connect(b)
    for member in (a1, gone):
        await member.join(room)
    await gone.close()
    # b stopped holding it as it read the close frame, before it answered with its own
    assert (await b.action("sendToTest", to=gone.id, message="nobody"))["delivered"] is False
    await eventually(  # the others once b has told Redis, the first step of its cleanup
        lambda: a1.action("sendToTest", to=gone.id, message="nobody"),
        lambda sent: sent["delivered"] is False,
        TIMEOUT,
        "a closed connection of b still reachable while it leaves its rooms",
    )
    for server in (a, b):  # (a1 leaves the room too, at the end)
        assert (await server.action("releaseLeaveTest", room=room))["released"] is True
    await eventually(  # and then it leaves its rooms
        lambda: a1.request("roomView", room=room),
        lambda view: set(view["data"]["members"]) == {a1.id},
        TIMEOUT,
        "the closed connection's membership removed once its leave middleware returned",
    )


async def test_a_peer_gone_during_slow_create_middleware_is_not_reachable_by_send_to(
    cluster, connect
):
    """A socket whose peer left while ``create`` middleware ran is never announced in Redis,
    where ``send_to`` from any server would then say True for good."""
    a, b, _ = cluster
    fingerprint = unique("slowcreate")
    ws = await websockets_connect(f"{a.ws_url}?sessionID={fingerprint}", open_timeout=TIMEOUT)
    seen = await eventually(
        lambda: a.action("slowCreateProbe", fingerprint=fingerprint),
        lambda probe: probe["id"] is not None,
        TIMEOUT,
        "the slow create middleware never saw the socket",
    )
    await ws.close()
    await eventually(
        lambda: a.action("slowCreateProbe", fingerprint=fingerprint),
        lambda probe: probe["finished"],
        TIMEOUT,
        "the slow create middleware never returned",
    )
    fence = await connect(a)  # a has written to Redis whatever the slow socket made it write

    assert (await b.action("sendToTest", to=seen["id"], message="ghost"))["delivered"] is False
    assert (await b.action("sendToTest", to=fence.id, message="alive"))["delivered"] is True


async def test_a_push_to_everyone_reaches_every_connection_of_every_server_once(cluster, connect):
    a, b, c = cluster
    clients = [await connect(server) for server in (a, a, b, c, c)]
    for message in ("to all", "fence"):
        assert (await b.action("sendAllTest", message=message))["sent"] is True
    for client in clients:
        await client.next(lambda f: f.get("message") == "fence")
        pushes = client.take(lambda f: f.get("context") == "alert")
        assert pushes == [{"context": "alert", "message": "to all"}], client


async def test_server_code_says_in_a_room_on_every_server(cluster, connect):
    a, b, c = cluster
    room = unique("broadcast")
    assert (await a.action("createChatRoom", name=room))["didCreate"] is True
    members = [await connect(server) for server in (a, b)]
    for member in members:
        await member.join(room)
    # said on c, which has no member of the room
    assert (await c.action("broadcastTest", room=room, message="from c"))["said"] is True
    assert (await c.action("broadcastTest", room=room, message="fence"))["said"] is True
    for member in members:
        await member.said(room, "fence")
        said = member.take(lambda f: f.get("room") == room)
        assert said == [
            {"context": "user", "message": "from c", "room": room, "from": 0, "sentAt": now_ms()}
        ]
