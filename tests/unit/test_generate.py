"""squall.generate without a subprocess: where each kind goes, what names it takes, and that it
never replaces a file (the integration tier runs the generated tests in a real project)."""

from __future__ import annotations

import pytest

from squall import load_config
from squall.generate import GenerateError, generate

from .conftest import write_app


@pytest.fixture
def config(tmp_path):
    return load_config(write_app(tmp_path / "project"), "test", environ={})


def test_an_action_goes_to_the_first_action_folder_with_its_test(config):
    written = generate(config, "action", "randomWord")

    assert [p.relative_to(config.root).as_posix() for p in written] == [
        "actions/randomWord.py",
        "tests/actions/test_randomWord.py",
    ]
    source, test = (path.read_text() for path in written)
    assert 'name="randomWord"' in source
    assert "async def random_word(data):" in source
    assert "async def test_random_word_greets_by_name(squall):" in test
    compile(source, "randomWord.py", "exec")
    compile(test, "test_randomWord.py", "exec")


def test_the_folder_follows_general_paths_actions(tmp_path):
    root = write_app(
        tmp_path / "project", extra_yaml="general:\n  paths:\n    actions: [src/api]\n"
    )
    (root / "src" / "api").mkdir(parents=True)
    config = load_config(root, "test", [root / "config" / "extra.yaml"], environ={})

    written = generate(config, "middleware", "audit")

    assert [p.relative_to(root).as_posix() for p in written] == [
        "src/api/audit.py",
        "tests/api/test_audit.py",
    ]
    assert "audit = ActionMiddleware(" in written[0].read_text()


@pytest.mark.parametrize("name", ["", "2fast", "with-dash", "dotted.name", "class", "../up"])
def test_unusable_names_are_refused(config, name):
    with pytest.raises(GenerateError, match="is not a usable name"):
        generate(config, "action", name)


def test_an_unknown_kind_is_refused(config):
    with pytest.raises(GenerateError, match="cannot generate 'task': choose one of action"):
        generate(config, "task", "nightly")


def test_nothing_is_replaced_and_nothing_written_when_one_target_exists(config):
    test = config.root / "tests" / "actions" / "test_hello.py"
    test.parent.mkdir(parents=True)
    test.write_text("# mine\n")

    with pytest.raises(GenerateError) as refused:
        generate(config, "action", "hello")

    assert str(refused.value) == "tests/actions/test_hello.py already exists; nothing was written"
    assert test.read_text() == "# mine\n"
    assert not (config.root / "actions" / "hello.py").exists()
