"""Authorization functions the contract tier configures by dotted path
(``servers.websocket.server.authorization``, PROTOCOL.md §6): one a coroutine, one plain."""


def _decide(request):
    if type(request).__name__ != "HTTPServerRequest":  # Tornado's, as PROTOCOL.md says
        raise TypeError(f"called with a {type(request).__name__}")
    verdict = request.headers.get("X-Contract")
    if verdict == "raise":
        raise PermissionError("not with that header")
    if verdict == "mute":
        raise PermissionError()
    return verdict == "yes"


async def admit_async(request):
    return _decide(request)


def admit_sync(request):
    return _decide(request)
