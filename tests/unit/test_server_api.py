"""The server API works as the README shows it, from async actions and from plain-def actions
(which run in a thread) alike: app.send_to, app.send_all, app.rooms.*, connection.send and
connection.destroy start their work at once on the loop; a future says how it went."""

from __future__ import annotations

import pytest

from squall.testing import Harness

APP = """
    import threading

    from squall import ChatMiddleware, Input, action
    from squall.errors import RoomNotExist

    TARGET = {"to": Input(required=True)}


    # -- async actions: await for the result, or just call -------------------------------------

    @action(name="asyncSendTo", inputs=TARGET)
    async def async_send_to(data):
        data.app.send_to(data.params["to"], {"context": "alert", "how": "called"})
        found = await data.app.send_to(data.params["to"], {"context": "alert", "how": "awaited"})
        return {"found": found, "nobody": await data.app.send_to("no-such-id", {})}


    @action(name="asyncSendAll")
    async def async_send_all(data):
        data.app.send_all({"context": "alert", "to": "all"})
        return {}


    @action(name="asyncRooms")
    async def async_rooms(data):
        created = await data.app.rooms.add("async-room")
        listed = await data.app.rooms.list()
        await data.app.rooms.broadcast("async-room", "hello")
        try:
            await data.app.rooms.broadcast("no-such-room", "hello")
        except RoomNotExist as exc:
            missing = str(exc)
        return {
            "created": created,
            "exists": await data.app.rooms.exists("async-room"),
            "listed": "async-room" in listed,
            "members": await data.app.rooms.members("defaultRoom"),
            "missing": missing,
            "destroyed": await data.app.rooms.destroy("async-room"),
        }


    # -- plain-def actions: the same calls, from a thread of the pool ------------------------------

    @action(name="threadSendTo", inputs=TARGET)
    def thread_send_to(data):
        data.app.send_to(data.params["to"], {"context": "alert", "how": "called"})
        found = data.app.send_to(data.params["to"], {"context": "alert", "how": "waited"})
        return {"found": found.result(5), "thread": threading.current_thread().name}


    @action(name="threadSendAll")
    def thread_send_all(data):
        data.app.send_all({"context": "alert", "to": "all"})
        return {}


    @action(name="threadRooms")
    def thread_rooms(data):
        created = data.app.rooms.add("thread-room").result(5)
        data.app.rooms.broadcast("thread-room", "hello").result(5)
        try:
            data.app.rooms.broadcast("no-such-room", "hello").result(5)
        except RoomNotExist as exc:
            missing = str(exc)
        return {
            "created": created,
            "exists": data.app.rooms.exists("thread-room").result(5),
            "listed": "thread-room" in data.app.rooms.list().result(5),
            "members": data.app.rooms.members("defaultRoom").result(5),
            "missing": missing,
            "destroyed": data.app.rooms.destroy("thread-room").result(5),
        }


    @action(name="threadPush", inputs={"frames": Input(required=True)})
    def thread_push(data):
        for frame in data.params["frames"]:
            data.connection.send(frame)
        return {"pushed": len(data.params["frames"])}


    @action(name="threadDestroy")
    def thread_destroy(data):
        data.connection.destroy()
        return {}


    # -- a plain hook on the loop: calls start, nothing to await ---------------------------------

    def _announce(connection, room):
        if room == "announced":
            CHAT_APP[0].rooms.broadcast(room, f"{connection.id} is coming")


    CHAT_APP = []
    announcer = ChatMiddleware(name="announcer", join=_announce)


    @action(name="keepApp")
    async def keep_app(data):
        CHAT_APP[:] = [data.app]
        return {}
"""

OPTIONS = """
    general:
      startingChatRooms:
        defaultRoom: {}
        announced: {}
    servers:
      websocket:
        enabled: true
"""


@pytest.fixture
async def squall(make_harness) -> Harness:
    return await make_harness({"actions/api.py": APP}, OPTIONS)


def alerts(socket) -> list[dict]:
    return [frame for frame in socket.pushed if frame.get("context") == "alert"]


@pytest.mark.parametrize(
    ("action", "how"), [("asyncSendTo", "awaited"), ("threadSendTo", "waited")]
)
async def test_send_to_sends_when_called_and_when_waited_on(squall, action, how):
    target = await squall.connect()

    reply = await squall.run(action, {"to": target.id})

    assert reply["found"] is True
    await target.next(lambda frame: frame.get("how") == how)
    assert alerts(target) == [
        {"context": "alert", "how": "called"},
        {"context": "alert", "how": how},
    ]
    if action == "threadSendTo":
        assert reply["thread"].startswith("squall-action")
    else:
        assert reply["nobody"] is False


@pytest.mark.parametrize("action", ["asyncSendAll", "threadSendAll"])
async def test_send_all_reaches_every_socket_when_just_called(squall, action):
    sockets = [await squall.connect(), await squall.connect()]

    await squall.run(action)

    for socket in sockets:
        assert await socket.next(lambda frame: frame.get("to") == "all") == {
            "context": "alert",
            "to": "all",
        }


@pytest.mark.parametrize(
    ("action", "room"), [("asyncRooms", "async-room"), ("threadRooms", "thread-room")]
)
async def test_the_rooms_api_answers_alike(squall, action, room):
    member = await squall.connect()
    await member.room_add("defaultRoom")

    reply = await squall.run(action)

    assert reply.status == 200, reply
    assert {key: value for key, value in reply.items() if key != "members"} == {
        "created": True,
        "exists": True,
        "listed": True,
        "missing": "room does not exist",
        "destroyed": True,
    }
    assert list(reply["members"]) == [member.id]
    assert not await squall.app.rooms.exists(room)


async def test_connection_send_from_a_thread_reaches_the_socket_in_order(squall):
    socket = await squall.connect()
    frames = [{"n": n} for n in range(20)]

    reply = await socket.action("threadPush", {"frames": frames})

    assert reply["pushed"] == 20
    assert [frame for frame in socket.pushed if "n" in frame] == frames  # before the reply


async def test_connection_destroy_from_a_thread_closes_with_4000(squall):
    socket = await squall.connect()
    await socket.room_add("defaultRoom")

    await socket.action("threadDestroy")

    await socket.close()  # waits for the cleanup the destroy started
    assert socket.close_code == 4000
    assert await squall.app.rooms.members("defaultRoom") == {}


async def test_a_plain_hook_on_the_loop_may_just_call_the_api(squall):
    await squall.run("keepApp")
    watcher, newcomer = await squall.connect(), await squall.connect()
    await watcher.room_add("announced")

    await newcomer.room_add("announced")

    said = await watcher.next(lambda frame: frame.get("message") == f"{newcomer.id} is coming")
    assert (said["context"], said["room"], said["from"]) == ("user", "announced", 0)
