"""``python server.py generate action|middleware|initializer NAME``: start a file, and its test.

As ``actionhero generate action``: each kind writes a commented skeleton that works as it stands
into the project's first drop-in folder of its kind, and a test of it under
``tests/<folder>/test_<NAME>.py`` that passes under the project's test command (``ruff check``,
``ruff format --check``, pytest with the ``squall`` fixture). Nothing is ever overwritten: when
any target exists, nothing is written and the error names it.
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from string import Template

from .config import Config, load_config
from .errors import SquallError

__all__ = ["KINDS", "GenerateError", "generate", "main"]

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


class GenerateError(SquallError):
    """The name is unusable, or a file to write already exists."""


@dataclass(frozen=True)
class Kind:
    """What one kind of generated file is: where it goes and its two templates."""

    folders: Callable[[Config], list[str]]
    source: str
    test: str


def _snake(name: str) -> str:
    """``randomNumber`` -> ``random_number``: the Python name of the generated function."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


ACTION = '''\
"""$name: describe what it answers (the API reference page shows the description below)."""

from squall import Input, action


@action(
    name="$name",
    description="Greets someone by name",
    # Each input goes through default -> formatter -> validator -> required; a validator
    # returning a message (or raising) answers 422 with it.
    inputs={"name": Input(default="world", description="who to greet")},
    output_example={"greeting": "Hello, world!"},
)
async def $function(data):
    # data.params: the checked inputs; data.connection: the caller (.session, .send(), .id);
    # data.app: the server (.rooms, .state, .send_to(), .send_all()). The returned dict is the
    # reply; raise squall's NotFound, Forbidden... (ActionError kinds) to answer with their
    # status. An async action must not block: make it a plain def to run it in a thread.
    return {"greeting": f"Hello, {data.params['name']}!"}
'''

ACTION_TEST = '''\
"""The $name action, through squall.testing (README: Testing your actions)."""


async def test_${function}_greets_by_name(squall):
    reply = await squall.run("$name", {"name": "Ada"})

    assert reply.status == 200
    assert reply["greeting"] == "Hello, Ada!"


async def test_${function}_over_a_socket(squall):
    socket = await squall.connect()

    reply = await socket.action("$name")

    assert reply["greeting"] == "Hello, world!"
'''

MIDDLEWARE = '''\
"""$name: action middleware, for the actions that name it: @action(..., middleware=["$name"])."""

import time

from squall import ActionMiddleware


def _stamp(data):
    # After the action: data.response is its reply, complete, and may be changed here.
    data.response["elapsedMs"] = round((time.monotonic() - data.started_at) * 1000, 3)


$function = ActionMiddleware(
    name="$name",
    # pre=fn(data) would run before the action, before its inputs are checked; raising there
    # refuses the call: raise squall's Unauthorized (401) or Forbidden (403) with a message.
    post=_stamp,
    priority=100,  # lower runs first
    is_global=False,  # True would wrap every action
)
'''

MIDDLEWARE_TEST = '''\
"""The $name middleware, around an action of this test's own (README: Testing your actions)."""

import pytest

from squall import action


@action(name="${name}Probe", middleware=["$name"])
async def probe(data):
    return {"ran": True}


@action(name="${name}Bystander")
async def bystander(data):
    return {"ran": True}


pytestmark = pytest.mark.squall(actions=[probe, bystander])


async def test_${function}_stamps_the_actions_that_name_it(squall):
    reply = await squall.run("${name}Probe")

    assert reply.status == 200
    assert reply["ran"] is True
    assert reply["elapsedMs"] >= 0


async def test_${function}_leaves_other_actions_alone(squall):
    reply = await squall.run("${name}Bystander")

    assert "elapsedMs" not in reply
'''

INITIALIZER = '''\
"""$name: opens what actions share, at boot, and closes it at shutdown."""

from collections import Counter

from squall import Initializer


async def start(app):
    # Runs before the server opens its port, in ascending priority; raising stops the boot,
    # naming this file. Open your pool or client here (await it) and keep it on app.state,
    # where actions find it as data.app.state.$function.
    app.state.$function = Counter()


async def stop(app):
    # Runs at shutdown after every socket is closed, in descending priority: close it here.
    del app.state.$function


$function = Initializer(name="$name", start=start, stop=stop, priority=100)
'''

INITIALIZER_TEST = '''\
"""The $name initializer, through squall.testing (README: Testing your actions)."""


async def test_${function}_is_open_while_the_app_runs(squall):
    assert squall.app.state.$function == {}


async def test_${function}_is_closed_at_shutdown(squall):
    state = squall.app.state

    await squall.stop()

    assert not hasattr(state, "$function")
'''

KINDS: dict[str, Kind] = {
    "action": Kind(lambda c: c.get("general.paths.actions"), ACTION, ACTION_TEST),
    "middleware": Kind(lambda c: c.get("general.paths.actions"), MIDDLEWARE, MIDDLEWARE_TEST),
    "initializer": Kind(
        lambda c: c.get("general.paths.initializers"), INITIALIZER, INITIALIZER_TEST
    ),
}


def generate(config: Config, kind: str, name: str) -> list[Path]:
    """Write the ``kind`` skeleton named ``name`` and its test; the written paths.

    Raises:
        GenerateError: an unknown kind, an unusable name, or a target that exists (nothing is
            written then).
    """
    spec = KINDS.get(kind)
    if spec is None:
        raise GenerateError(f"cannot generate {kind!r}: choose one of {', '.join(KINDS)}")
    if not _NAME.fullmatch(name) or keyword.iskeyword(_snake(name)):
        raise GenerateError(
            f"{name!r} is not a usable name: start with a letter, then letters, digits or '_'"
        )
    folder = Path(spec.folders(config)[0])
    targets = {
        config.root / folder / f"{name}.py": spec.source,
        config.root / "tests" / folder.name / f"test_{name}.py": spec.test,
    }
    taken = [path for path in targets if path.exists()]
    if taken:
        shown = " and ".join(str(path.relative_to(config.root)) for path in taken)
        verb = "exists" if len(taken) == 1 else "exist"
        raise GenerateError(f"{shown} already {verb}; nothing was written")
    values = {"name": name, "function": _snake(name)}
    for path, template in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("x", encoding="utf-8") as out:  # "x": never replace a file
                out.write(Template(template).substitute(values))
        except FileExistsError:  # created since the check above
            raise GenerateError(f"{path.relative_to(config.root)} already exists") from None
    return list(targets)


def main(root: Path, argv: list[str]) -> int:
    """The ``generate`` command of ``server.py``; its exit status."""
    parser = argparse.ArgumentParser(
        prog="server.py generate",
        description="Write a commented skeleton and a test for it; never overwrites a file.",
    )
    parser.add_argument("kind", choices=sorted(KINDS), help="what to generate")
    parser.add_argument("name", help="its name (the action's name, the file's name)")
    parser.add_argument("--env", default="development", help="whose config names the folders")
    args = parser.parse_args(argv)
    try:
        written = generate(load_config(root, args.env), args.kind, args.name)
    except SquallError as exc:
        print(f"squall: generate: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path.relative_to(root)}")
    return 0
