"""Test-only actions every server-running tier loads (``general.paths.actions`` of each tier's
options): server code that pushes frames to its caller, fails, destroys its connection or a
room, and says what rooms exist, so tests see from outside what server code does inside."""

from squall import Input, action


@action(
    name="pushTest",
    description="Push each of `frames` to the caller with connection.send",
    inputs={"frames": Input(required=True)},
)
async def push_test(data):
    for frame in data.params["frames"]:
        data.connection.send(frame)
    return {"pushed": len(data.params["frames"])}


@action(name="failTest", description="Raise an unexpected error (a bug, logged as one)")
async def fail_test(data):
    raise RuntimeError("this action fails on purpose")


@action(name="destroyTest", description="Destroy the caller's connection (close code 4000)")
async def destroy_test(data):
    data.connection.destroy()
    return {}


@action(
    name="destroyRoomTest",
    description="Destroy room `name` on every server, through the server API",
    inputs={"name": Input(required=True, formatter=str)},
)
async def destroy_room_test(data):
    return {"didDestroy": await data.app.rooms.destroy(data.params["name"])}


@action(
    name="roomsTest",
    description="Every room of the cluster (app.rooms.list()), and whether room `name` exists",
    inputs={"name": Input()},
)
async def rooms_test(data):
    rooms = data.app.rooms
    found = {"list": sorted(await rooms.list())}
    if "name" in data.params:
        found["exists"] = await rooms.exists(data.params["name"])
    return found
