"""The authorization function the admission tests configure by dotted path
(``servers.websocket.server.authorization: tests.integration.authz.admit``)."""


async def admit(request):
    """Admit ``X-Test-Token: good``; refuse a missing token; raise on ``bad`` (with a message)
    and ``mute`` (without one)."""
    token = request.headers.get("X-Test-Token")
    if token == "bad":
        raise PermissionError("token rejected")
    if token == "mute":
        raise PermissionError()
    return token == "good"
