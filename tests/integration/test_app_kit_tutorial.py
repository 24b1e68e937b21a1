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
from pathlib import Path

import pytest
from testkit import ROOT, Response, Server, http_request, running

from .app_kit import new_project, run, run_tests

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


def post(server: Server, path: str, body: dict, cookie: str = "") -> Response:
    """One JSON POST, as the page's script sends it (with the browser's cookie, if any)."""
    headers = {"Content-Type": "application/json"}
    if cookie:
        headers["Cookie"] = f"sessionID={cookie}"
    return http_request(server, "POST", path, json.dumps(body), headers)


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


async def test_the_tutorial_app_runs_as_it_says(project, connect):
    if not (project / "actions" / "score.py").exists():
        follow(project)
    with running(Server("team-chat", project, project=project)) as server:
        signed = await asyncio.to_thread(
            post, server, "/api/signIn", {"user": "ada", "team": "red"}
        )
        assert (signed.status, signed.json()["user"], signed.json()["team"]) == (200, "ada", "red")
        fingerprint = re.match(r"sessionID=([\w-]+)", signed.headers["Set-Cookie"])[1]

        # the page's socket: same browser, same session
        socket = await connect(server, headers={"Cookie": f"sessionID={fingerprint}"})
        me = await socket.action("me")
        assert (me["user"], me["team"]) == ("ada", "red")
        assert (await socket.request("roomAdd", room="team-blue"))["error"] == (
            "team-blue is for team blue only"
        )
        assert (await socket.request("roomAdd", room="team-red"))["status"] == "OK"

        scored = await asyncio.to_thread(post, server, "/api/score", {}, fingerprint)
        assert (scored.status, scored.json()["points"]) == (200, 1)

        docs = (await socket.request("documentation"))["data"]
        assert sorted(docs) == ["me", "score", "signIn"]
        assert docs["signIn"]["1"]["inputs"]["team"] == {
            "required": True,
            "description": "red or blue",
        }

        # a stranger is told to sign in, with the status the tutorial says
        refused = await asyncio.to_thread(post, server, "/api/me", {})
        assert (refused.status, refused.json()["error"]) == (401, "sign in first")
        # the docs page is served (it reads the documentation over the socket: no
        # showDocumentation action in this app; tests/browser checks the page itself)
        page = http_request(server, "GET", "/public/docs.html")
        assert b"API reference" in page.body
