"""status: this server's identity, load and broker, for health checks."""


async def test_reports_identity_and_counts(squall):
    socket = await squall.connect()

    reply = await squall.run("status")

    assert reply.status == 200
    assert reply["name"] == squall.app.config.get("general.serverName")
    assert reply["id"] == squall.app.id
    assert reply["stopping"] is False
    assert reply["pendingActions"] == 1  # this very call
    # the socket, and the HTTP request asking
    assert reply["connections"] == {"total": 2, "webSocket": 1, "web": 1}
    await socket.close()
    assert (await squall.run("status"))["connections"]["webSocket"] == 0
