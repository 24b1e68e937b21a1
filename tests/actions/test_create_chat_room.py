"""createChatRoom: makes a room sockets can join, once."""


async def test_creates_a_room_a_socket_can_join(squall):
    reply = await squall.run("createChatRoom", {"name": "lobby"})

    assert reply.status == 200
    assert reply == {"name": "lobby", "didCreate": True}
    assert await squall.app.rooms.exists("lobby")
    socket = await squall.connect()
    assert (await socket.room_add("lobby"))["data"] is True


async def test_a_second_create_says_it_existed(squall):
    await squall.run("createChatRoom", {"name": "lobby"})

    reply = await squall.run("createChatRoom", {"name": "lobby"})

    assert reply == {"name": "lobby", "didCreate": False}


async def test_the_name_is_required(squall):
    reply = await squall.run("createChatRoom")

    assert reply.status == 422
    assert reply.error == "name is a required parameter for this action"


async def test_a_room_with_presence_and_history(squall):
    reply = await squall.run(
        "createChatRoom", {"name": "team", "presence": True, "history": {"size": 20, "ttl": 60000}}
    )
    socket = await squall.connect()
    await socket.room_add("team")
    await socket.say("team", "hello")

    assert reply == {"name": "team", "didCreate": True}
    said = await socket.next(lambda frame: frame.get("context") == "user")
    assert said["offset"] == 1
    assert (await socket.next(lambda frame: frame.get("context") == "presence"))["id"] == socket.id


async def test_presence_may_come_as_query_string_text(squall):
    await squall.run("createChatRoom", {"name": "team", "presence": "true"})
    socket = await squall.connect()
    await socket.room_add("team")

    assert (await socket.next(lambda frame: frame.get("context") == "presence"))["event"] == "join"


async def test_a_client_asks_for_no_more_history_than_the_action_allows(squall):
    too_big = await squall.run("createChatRoom", {"name": "big", "history": {"size": 101}})
    too_long = await squall.run(
        "createChatRoom", {"name": "long", "history": {"size": 5, "ttl": 3_600_001}}
    )
    not_a_flag = await squall.run("createChatRoom", {"name": "odd", "presence": "maybe"})

    assert too_big.status == too_long.status == not_a_flag.status == 422
    assert too_big.error == (
        "invalid room options: history.size: expected an integer from 0 to 100, got int 101"
    )
    assert too_long.error == (
        "invalid room options: history.ttl: expected an integer from 1000 to 3600000, "
        "got int 3600001"
    )
    assert not_a_flag.error == (
        "invalid room options: presence: expected true or false, got str 'maybe'"
    )
    assert await squall.app.rooms.list() == ["defaultRoom"]
