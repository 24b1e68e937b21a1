"""The README's tutorial, done as a user would do it, from the README itself (so it cannot drift):
in a project with an empty ``actions/``, run its commands and write its files in order, run the
project's test command on the tests it gives, then run the server and check, over real HTTP and a
real socket, what the tutorial says: the session set over HTTP reaches the page's socket, the team
room is guarded, the scoreboard counts, and the docs page documents the app."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from .app_kit import ProjectServer, new_project, run, run_tests
from .support import ROOT, TIMEOUT

#: A fenced block of the README: its language and its text.
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def tutorial_blocks() -> list[tuple[str, str]]:
    """The fenced blocks of the README's tutorial section, in order."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Tutorial")
    end = readme.index("\n## ", start + 1)
    return [(match[1], match[2]) for match in _BLOCK.finditer(readme[start:end])]


def follow(project: Path) -> list[str]:
    """Do each step: write each file (a Python block starting ``# <path>``), run each
    ``python server.py`` command, and run the project's tests where the tutorial does.
    Returns what each test command said, to compare with what the tutorial says it says."""
    said = []
    for language, text in tutorial_blocks():
        if language == "python":
            first = text.splitlines()[0]
            assert first.startswith("# "), f"a tutorial file must start with its path: {first}"
            path = project / first[2:].strip()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            continue
        for line in text.splitlines():
            command, _, comment = line.partition("#")
            argv = shlex.split(command)
            if argv[:2] == ["python", "server.py"]:
                done = run(project, *argv)
                assert done.returncode == 0, done.stderr
            elif argv[:1] == ["./scripts/test"]:
                tests = run_tests(project, *argv[1:])
                assert tests.returncode == 0, tests.stdout + tests.stderr
                promised = re.search(r"(\d+ passed)", comment)
                assert promised and promised[1] in tests.stdout, (comment, tests.stdout)
                said.append(promised[1])
    return said


def request(server: ProjectServer, path: str, body: dict | None = None, cookie: str = ""):
    """(status, JSON body, Set-Cookie) of one HTTP request, as a browser sends it."""
    headers = {"Content-Type": "application/json"}
    if cookie:
        headers["Cookie"] = f"sessionID={cookie}"
    data = None if body is None else json.dumps(body).encode()
    call = urllib.request.Request(f"{server.url}{path}", data=data, headers=headers)
    try:
        with urllib.request.urlopen(call, timeout=TIMEOUT) as reply:
            return reply.status, json.loads(reply.read()), reply.headers.get("Set-Cookie", "")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers.get("Set-Cookie", "")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return new_project(tmp_path_factory.mktemp("tutorial") / "team-chat", shipped_actions=False)


def test_the_tutorial_builds_a_tested_app(project):
    assert list((project / "actions").iterdir()) == []

    assert follow(project) == ["4 passed"]

    assert sorted(p.name for p in (project / "actions").glob("*.py")) == [
        "score.py",
        "signIn.py",
        "teams.py",
    ]


async def test_the_tutorial_app_runs_as_it_says(project):
    if not (project / "actions" / "score.py").exists():
        follow(project)
    with ProjectServer(project) as server:
        status, signed, cookie = await asyncio.to_thread(
            request, server, "/api/signIn", {"user": "ada", "team": "red"}
        )
        assert (status, signed["user"], signed["team"]) == (200, "ada", "red")
        fingerprint = re.match(r"sessionID=([\w-]+)", cookie)[1]

        # the page's socket: same browser, same session
        async with connect(
            server.url.replace("http", "ws") + "/primus",
            additional_headers={"Cookie": f"sessionID={fingerprint}"},
            open_timeout=TIMEOUT,
        ) as socket:

            async def verb(event: str, **fields) -> dict:
                await socket.send(json.dumps({"event": event, "messageId": event, **fields}))
                while True:
                    frame = json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT))
                    if frame.get("messageId") == event:
                        return frame

            me = await verb("action", params={"action": "me"})
            assert (me["user"], me["team"]) == ("ada", "red")
            assert (await verb("roomAdd", room="team-blue"))["error"] == (
                "team-blue is for team blue only"
            )
            assert (await verb("roomAdd", room="team-red"))["status"] == "OK"

            status, scored, _ = await asyncio.to_thread(
                request, server, "/api/score", {}, fingerprint
            )
            assert (status, scored["points"]) == (200, 1)

            docs = (await verb("documentation"))["data"]
            assert sorted(docs) == ["me", "score", "signIn"]
            assert docs["signIn"]["1"]["inputs"]["team"] == {
                "required": True,
                "description": "red or blue",
            }

        # a stranger is told to sign in, with the status the tutorial says
        status, refused, _ = await asyncio.to_thread(request, server, "/api/me", {})
        assert (status, refused["error"]) == (401, "sign in first")
        # the docs page is served (it reads the documentation over the socket: no
        # showDocumentation action in this app; tests/browser checks the page itself)
        with urllib.request.urlopen(f"{server.url}/public/docs.html", timeout=TIMEOUT) as page:
            assert b"API reference" in page.read()
