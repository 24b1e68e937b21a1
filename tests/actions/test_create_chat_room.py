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
