"""echo, tested as any application tests its actions: with the squall fixture."""


async def test_echo_returns_its_params(squall):
    reply = await squall.run("echo", {"hello": "world", "n": 3})

    assert reply.status == 200
    assert reply == {"action": "echo", "hello": "world", "n": 3}


async def test_echo_over_a_socket(squall):
    socket = await squall.connect()

    reply = await socket.action("echo", {"hello": "world"})

    assert reply["hello"] == "world"
    assert "error" not in reply
