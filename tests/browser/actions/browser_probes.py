"""Test-only actions for the browser suite (loaded through general.paths.actions): server code
that pushes frames to the caller, so the client's event routing can be seen from a page."""

from squall import Input, action


@action(
    name="pushFrames",
    description="Push each of `frames` to the caller with connection.send",
    inputs={"frames": Input(required=True)},
)
async def push_frames(data):
    for frame in data.params["frames"]:
        data.connection.send(frame)
    return {"pushed": len(data.params["frames"])}


@action(name="destroyMe", description="Destroy the caller's connection (close code 4000)")
async def destroy_me(data):
    data.connection.destroy()
    return {}


@action(name="failOnPurpose", description="Raise an unexpected error (a bug, logged as one)")
async def fail_on_purpose(data):
    raise RuntimeError("this action fails on purpose")
