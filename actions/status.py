"""status: is this server healthy, and how busy is it?"""

from squall import action


@action(
    description="This server's id, name, version, uptime, connection counts, memory and broker",
    output_example={
        "id": "web-1-4242",
        "name": "squall",
        "version": "0.1.0",
        "uptime": 10384,
        "connections": {"total": 2, "webSocket": 1, "web": 1},
    },
)
async def status(data):
    return data.app.status()
