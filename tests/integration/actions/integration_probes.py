"""Test-only actions for the integration suite (loaded through general.paths.actions).

Each one exercises a single behaviour of PROTOCOL.md from inside the server.
"""

import asyncio
import time

from squall import Input, action


@action(name="forbiddenTest", description="Raise PermissionError, as an auth check would")
async def forbidden_test(data):
    raise PermissionError("members only")


@action(
    name="paramsTest",
    description="Report which of a and b it saw, after `delay` ms",
    inputs={"a": Input(), "b": Input(), "delay": Input(default=0, formatter=int)},
)
async def params_test(data):
    await asyncio.sleep(data.params["delay"] / 1000)  # the behaviour under test: a slow action
    return {"seen": {key: data.params[key] for key in ("a", "b") if key in data.params}}


def _even(value):
    return value % 2 == 0


def _lower(value):
    return True if value == value.lower() else "word must be lower case"


def _forty_two(value):
    if value != 42:
        raise ValueError("the answer is 42")
    return True


@action(
    name="inputsTest",
    description="Declares one input per failure mode of the input pipeline",
    inputs={
        "needed": Input(required=True),
        "even": Input(formatter=int, validator=_even),
        "word": Input(validator=_lower),
        "answer": Input(formatter=int, validator=_forty_two),
    },
)
async def inputs_test(data):
    return {"accepted": {k: v for k, v in data.params.items() if k != "action"}}


@action(name="versionTest", version=1, description="Version one")
async def version_test_1(data):
    return {"version": 1}


@action(name="versionTest", version=2, description="Version two")
async def version_test_2(data):
    return {"version": 2}


@action(
    name="docTest",
    version=3,
    description="Documented on purpose",
    inputs={
        "x": Input(required=True, description="an x"),
        "y": Input(default=7),
    },
    output_example={"ok": True},
)
async def doc_test(data):
    return {"ok": True}


@action(
    name="syncTest",
    description="A plain function that blocks its thread for `duration` ms",
    inputs={"duration": Input(default=300, formatter=int)},
)
def sync_test(data):
    time.sleep(data.params["duration"] / 1000)  # the behaviour under test: blocking code
    return {"slept": data.params["duration"]}


@action(
    name="nameTest",
    description="Keep a display name in the session (join middleware shows it in presence)",
    inputs={"name": Input(required=True)},
)
async def name_test(data):
    data.connection.session["name"] = data.params["name"]
    return {"name": data.params["name"]}
