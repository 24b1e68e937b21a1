"""``python server.py generate``: in a fresh project, each kind writes a skeleton and a test that
pass the project's test command (ruff and pytest) as they are, and a second generate of the same
name refuses, naming the file, and writes nothing."""

from __future__ import annotations

import pytest

from .app_kit import new_project, run, run_tests


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return new_project(tmp_path_factory.mktemp("generate") / "project", shipped_actions=False)


@pytest.mark.parametrize(
    ("kind", "name", "written"),
    [
        ("action", "sayHello", ["actions/sayHello.py", "tests/actions/test_sayHello.py"]),
        ("middleware", "timing", ["actions/timing.py", "tests/actions/test_timing.py"]),
        (
            "initializer",
            "hitCounter",
            ["initializers/hitCounter.py", "tests/initializers/test_hitCounter.py"],
        ),
    ],
)
def test_generated_files_pass_the_project_tests(project, kind, name, written):
    result = run(project, "python", "server.py", "generate", kind, name)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"wrote {path}" for path in written]
    tests = run_tests(project, written[1])
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout


def test_a_second_generate_refuses_and_writes_nothing(project):
    run(project, "python", "server.py", "generate", "action", "once")
    source = project / "actions" / "once.py"
    edited = source.read_text() + "\n\nEDITED_BY_THE_USER = True\n"
    source.write_text(edited)

    again = run(project, "python", "server.py", "generate", "action", "once")

    assert again.returncode == 2
    assert again.stderr.strip() == (
        "squall: generate: actions/once.py and tests/actions/test_once.py already exist; "
        "nothing was written"
    )
    assert source.read_text() == edited


def test_generated_actions_are_served_and_documented(project):
    run(project, "python", "server.py", "generate", "action", "served")

    tests = run_tests(project)  # the whole project: every generated file together

    assert tests.returncode == 0, tests.stdout + tests.stderr
