"""Discovery of drop-in files: what is collected, once, and how a broken file stops the boot."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from squall import ActionMiddleware, ChatMiddleware, ConfigError, ConnectionMiddleware
from squall.errors import ActionLoadError
from squall.loader import load_callable, load_folders


def folder_with(root: Path, files: dict[str, str], name: str = "actions") -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, text in files.items():
        (folder / file_name).write_text(textwrap.dedent(text))
    return folder


def load_error(*folders: Path) -> ActionLoadError:
    with pytest.raises(ActionLoadError) as caught:
        load_folders(folders)
    return caught.value


def declaration(name: str, version: float = 1) -> str:
    """A file declaring one action ``name`` at ``version``."""
    return (
        "from squall import action\n\n"
        f"@action({name!r}, version={version!r})\n"
        "async def run(data):\n"
        "    return {}\n"
    )


GREETINGS = """
    from squall import action, Input

    @action(name="greet", version=1, inputs={"who": Input(default="world")})
    async def greet_v1(data):
        return {"greeting": "hello " + data.params["who"]}

    @action(name="greet", version=2)
    async def greet_v2(data):
        return {"greeting": "hi"}

    @action()
    def shout(data):
        return {"loud": True}
"""

MIDDLEWARE = """
    from squall import ActionMiddleware, ChatMiddleware, ConnectionMiddleware

    timing = ActionMiddleware(name="timing", priority=5)
    auth = ActionMiddleware(name="auth", is_global=False)
    audit = ConnectionMiddleware(name="audit")
    vip = ChatMiddleware(name="vip")
"""


def test_load_folders_collects_several_actions_per_file(tmp_path):
    folder = folder_with(tmp_path, {"greetings.py": GREETINGS})

    loaded = load_folders([folder])

    assert sorted((a.name, a.version) for a in loaded.actions) == [
        ("greet", 1),
        ("greet", 2),
        ("shout", 1),
    ]
    assert loaded.actions.match("greet").version == 2
    assert loaded.actions.match("greet", "1").run.__name__ == "greet_v1"
    assert loaded.actions.match("greet", 2.0).run.__name__ == "greet_v2"
    assert loaded.actions.match("greet", 3) is None
    assert loaded.actions.match("shout").source == str(folder / "greetings.py")


def test_load_folders_collects_every_kind_of_middleware(tmp_path):
    folder = folder_with(tmp_path, {"mw.py": MIDDLEWARE})

    loaded = load_folders([folder])

    assert [m.name for m in loaded.action_middleware] == ["timing", "auth"]
    assert all(isinstance(m, ActionMiddleware) for m in loaded.action_middleware)
    assert [m.name for m in loaded.connection_middleware] == ["audit"]
    assert isinstance(loaded.connection_middleware[0], ConnectionMiddleware)
    assert [m.name for m in loaded.chat_middleware] == ["vip"]
    assert isinstance(loaded.chat_middleware[0], ChatMiddleware)


def test_load_folders_versions_across_files(tmp_path):
    folder = folder_with(
        tmp_path,
        {"a_v1.py": declaration("x", 1), "b_v3.py": declaration("x", 3)},
    )

    loaded = load_folders([folder])

    assert loaded.actions.match("x").version == 3
    assert loaded.actions.match("x", "1").version == 1


def test_load_folders_skips_underscore_files_and_non_python(tmp_path):
    folder = folder_with(
        tmp_path,
        {
            "_helpers.py": "raise RuntimeError('never imported')\n",
            "__init__.py": "raise RuntimeError('never imported')\n",
            "notes.txt": "not python",
            "real.py": declaration("real"),
        },
    )

    loaded = load_folders([folder])

    assert [a.name for a in loaded.actions] == ["real"]


def test_load_folders_reads_files_in_name_order(tmp_path):
    folder = folder_with(
        tmp_path,
        {
            f"{stem}.py": f"from squall import ActionMiddleware\n\nm = ActionMiddleware('{stem}')\n"
            for stem in ("c", "a", "b")
        },
    )

    loaded = load_folders([folder])

    assert [m.name for m in loaded.action_middleware] == ["a", "b", "c"]


def test_load_folders_several_folders(tmp_path):
    first = folder_with(tmp_path, {"one.py": GREETINGS}, "first")
    second = folder_with(tmp_path, {"two.py": MIDDLEWARE}, "second")

    loaded = load_folders([first, second])

    assert len(loaded.actions) == 3
    assert len(loaded.action_middleware) == 2


def test_load_folders_empty_folder(tmp_path):
    loaded = load_folders([folder_with(tmp_path, {})])

    assert len(loaded.actions) == 0
    assert loaded.action_middleware == []


def test_load_folders_missing_folder(tmp_path):
    error = load_error(tmp_path / "nowhere")

    assert str(error) == f"{tmp_path / 'nowhere'}: action folder does not exist"


@pytest.mark.parametrize(
    ("source", "why", "cause"),
    [
        (
            "import os\n\nvalue = 1 / 0\n",
            "3: ZeroDivisionError: division by zero",
            ZeroDivisionError,
        ),
        # raised inside a function: the line named is the raising one
        (
            "def helper():\n    raise KeyError('cfg')\n\n\nhelper()\n",
            "2: KeyError: 'cfg'",
            KeyError,
        ),
        (
            "import squall_no_such_module\n",
            "1: ModuleNotFoundError: No module named 'squall_no_such_module'",
            ModuleNotFoundError,
        ),
        (
            "x = 1\n\ndef f(:\n    pass\n",
            "3: SyntaxError: invalid syntax (broken.py, line 3)",
            SyntaxError,
        ),
    ],
)
def test_load_folders_file_that_cannot_import_names_file_and_line(tmp_path, source, why, cause):
    folder = folder_with(tmp_path, {"broken.py": source})

    error = load_error(folder)

    assert str(error) == f"{folder / 'broken.py'}:{why}"
    assert isinstance(error.__cause__, cause)


def test_load_folders_failed_import_leaves_no_module_behind(tmp_path):
    folder = folder_with(tmp_path, {"gone.py": "raise RuntimeError('no')\n"})
    before = set(sys.modules)

    load_error(folder)

    assert set(sys.modules) - before == set()


def test_load_folders_duplicate_name_and_version_across_files(tmp_path):
    folder = folder_with(tmp_path, {"a.py": declaration("twin"), "b.py": declaration("twin")})

    error = load_error(folder)

    first, second = folder / "a.py", folder / "b.py"
    assert str(error) == (
        f"{second}: action 'twin' version 1 is declared twice ({first} and {second})"
    )


def test_load_folders_duplicate_across_folders(tmp_path):
    first = folder_with(tmp_path, {"a.py": declaration("twin")}, "first")
    second = folder_with(tmp_path, {"b.py": declaration("twin")}, "second")

    error = load_error(first, second)

    assert str(error) == (
        f"{second / 'b.py'}: action 'twin' version 1 is declared twice "
        f"({first / 'a.py'} and {second / 'b.py'})"
    )


@pytest.mark.parametrize("kind", ["ActionMiddleware", "ConnectionMiddleware", "ChatMiddleware"])
def test_load_folders_two_middleware_of_one_kind_and_name_stop_the_boot(tmp_path, kind):
    """A second file's middleware named like the auth one used to replace it
    silently; the boot now stops naming both files."""
    declare = f"from squall import {kind}\n\nguard = {kind}(name='auth')\n"
    folder = folder_with(tmp_path, {"auth.py": declare, "zz_other.py": declare})

    error = load_error(folder)

    first, second = folder / "auth.py", folder / "zz_other.py"
    label = {"ActionMiddleware": "action", "ConnectionMiddleware": "connection"}.get(kind, "chat")
    assert str(error) == (
        f"{second}: {label} middleware 'auth' is declared twice ({first} and {second})"
    )


def test_load_folders_two_middleware_of_one_name_in_one_file_stop_the_boot(tmp_path):
    folder = folder_with(
        tmp_path,
        {
            "auth.py": """
                from squall import ActionMiddleware

                strict = ActionMiddleware(name="auth", pre=lambda data: None)
                lenient = ActionMiddleware(name="auth")
            """
        },
    )

    error = load_error(folder)

    path = folder / "auth.py"
    assert str(error) == f"{path}: action middleware 'auth' is declared twice ({path} and {path})"


def test_load_folders_one_name_in_several_middleware_kinds_is_fine(tmp_path):
    folder = folder_with(
        tmp_path,
        {
            "auth.py": """
                from squall import ActionMiddleware, ChatMiddleware, ConnectionMiddleware

                a = ActionMiddleware(name="auth")
                b = ChatMiddleware(name="auth")
                c = ConnectionMiddleware(name="auth")
            """
        },
    )

    loaded = load_folders([folder])

    assert [len(loaded.action_middleware), len(loaded.chat_middleware)] == [1, 1]
    assert len(loaded.connection_middleware) == 1


@pytest.mark.parametrize(
    ("declaration_text", "why"),
    [
        (
            "ChatMiddleware(name='vip', join=lambda connection: None)",
            "chat middleware 'vip': join must take (connection, room), but takes (connection)",
        ),
        (
            "ChatMiddleware(name='vip', on_say_receive=lambda c, r: None)",
            "chat middleware 'vip': on_say_receive must take (connection, room, payload), "
            "but takes (c, r)",
        ),
        (
            "ChatMiddleware(name='vip', say='shout')",
            "chat middleware 'vip': say must be a function taking (connection, room, payload), "
            "got str 'shout'",
        ),
        (
            "ActionMiddleware(name='auth', pre=lambda: None)",
            "action middleware 'auth': pre must take (data), but takes ()",
        ),
        (
            "ActionMiddleware(name='auth', post=lambda data, extra: None)",
            "action middleware 'auth': post must take (data), but takes (data, extra)",
        ),
        (
            "ConnectionMiddleware(name='greet', create=lambda connection, room: None)",
            "connection middleware 'greet': create must take (connection), "
            "but takes (connection, room)",
        ),
        (
            "ConnectionMiddleware(name='greet', destroy=42)",
            "connection middleware 'greet': destroy must be a function taking (connection), "
            "got int 42",
        ),
        ("ChatMiddleware(name='')", "chat middleware: name must be a non-empty string, got ''"),
        (
            "ActionMiddleware(name='auth', priority='high')",
            "action middleware 'auth': priority must be a number, got 'high'",
        ),
    ],
)
def test_load_folders_middleware_that_cannot_be_called_stops_the_boot(
    tmp_path, declaration_text, why
):
    """A join hook of the wrong arity used to answer roomAdd with Python's
    TypeError text; now the boot stops with a sentence naming the file."""
    source = (
        "from squall import ActionMiddleware, ChatMiddleware, ConnectionMiddleware\n\n"
        f"declared = {declaration_text}\n"
    )
    folder = folder_with(tmp_path, {"hooks.py": source})

    assert str(load_error(folder)) == f"{folder / 'hooks.py'}: {why}"


@pytest.mark.parametrize(
    ("declared", "why"),
    [
        (
            '@action(name="bad name")',
            "action name 'bad name' must start with a letter and use only "
            "letters, digits, '_', '.', ':' or '-'",
        ),
        (
            '@action(inputs={"a": {"required": True}})',
            "action 'hello': input 'a' must be an Input(...)",
        ),
        (
            '@action(middleware=["auth"])',
            "action 'hello' names middleware 'auth', which no file declares",
        ),
        # it used to boot and answer every call 422 'str' object is not callable
        (
            '@action(inputs={"n": Input(validator="positive")})',
            "action 'hello': input 'n' validator must be a function taking (value), "
            "got str 'positive'",
        ),
        # it used to stop the boot with a cryptic ValueError from dict()
        (
            '@action(inputs=["name"])',
            "action 'hello': inputs must be a mapping of input name to Input(...), such as "
            "{'name': Input(required=True)}; got a list",
        ),
    ],
)
def test_load_folders_declaration_that_cannot_work_stops_the_boot_naming_the_file(
    tmp_path, declared, why
):
    source = (
        f"from squall import Input, action\n\n{declared}\nasync def hello(data):\n    return {{}}\n"
    )
    folder = folder_with(tmp_path, {"bad.py": source})

    assert str(load_error(folder)) == f"{folder / 'bad.py'}: {why}"


def test_load_folders_middleware_declared_in_another_file(tmp_path):
    folder = folder_with(
        tmp_path,
        {
            "a_guarded.py": """
                from squall import action

                @action(middleware=["auth"])
                async def guarded(data):
                    return {}
            """,
            "z_auth.py": MIDDLEWARE,
        },
    )

    loaded = load_folders([folder])

    assert loaded.actions.match("guarded").middleware == ("auth",)


def test_load_folders_objects_imported_from_a_sibling_are_collected_once(tmp_path):
    folder = folder_with(
        tmp_path,
        {
            "a.py": """
                from squall import ActionMiddleware, ChatMiddleware, action

                @action()
                async def hello(data):
                    return {}

                auth = ActionMiddleware(name="auth", is_global=False)
                vip = ChatMiddleware(name="vip")
            """,
            "b.py": """
                from squall import action
                from squall_app.actions.a import hello as again
                from .a import auth, hello, vip

                @action(middleware=["auth"])
                async def bye(data):
                    return {}
            """,
        },
    )

    loaded = load_folders([folder])

    assert [a.name for a in loaded.actions] == ["hello", "bye"]
    assert loaded.actions.match("hello").source == str(folder / "a.py")
    assert [m.name for m in loaded.action_middleware] == ["auth"]
    assert [m.name for m in loaded.chat_middleware] == ["vip"]


ALIAS = """
    from squall import action

    @action()
    async def hello(data):
        return {}

    greet = hello  # an alias is the same declaration, not a second one
"""

PARTIAL = """
    import functools

    from squall import Action

    async def reply(word, data):
        return {"word": word}

    yes = Action(name="yes", run=functools.partial(reply, "yes"))
"""

GREET_WITH_HELPER = """
    from squall import action

    from ._shared import PREFIX

    @action()
    async def greet(data):
        return {"greeting": PREFIX + "world"}
"""


@pytest.mark.parametrize(
    ("files", "names"),
    [
        ({"alias.py": ALIAS}, ["hello"]),
        ({"partial.py": PARTIAL}, ["yes"]),
        ({"_shared.py": "PREFIX = 'hello '\n", "greet.py": GREET_WITH_HELPER}, ["greet"]),
    ],
    ids=[
        "action-bound-to-two-names",
        "action-around-a-partial",
        "file-importing-an-underscore-helper",
    ],
)
def test_load_folders_collects_each_action_once(tmp_path, files, names):
    loaded = load_folders([folder_with(tmp_path, files)])

    assert [a.name for a in loaded.actions] == names


# -- load_callable ------------------------------------------------------------------------


@pytest.mark.parametrize("dotted", ["os.path.join", "os.path:join"])
def test_load_callable_finds_the_function(dotted):
    assert load_callable(dotted, "servers.websocket.server.authorization") is os.path.join


@pytest.mark.parametrize(
    ("dotted", "why"),
    [
        ("join", "expected module.function, got 'join'"),
        ("squall_no_such_module.check", "cannot import 'squall_no_such_module': "
         "No module named 'squall_no_such_module'"),
        ("os.path.nope", "'os.path' has no function 'nope'"),
        ("os.sep", "'os' has no function 'sep'"),
    ],
)  # fmt: skip
def test_load_callable_errors_name_the_option(dotted, why):
    with pytest.raises(ConfigError) as caught:
        load_callable(dotted, "servers.websocket.server.authorization")

    assert str(caught.value) == f"config: servers.websocket.server.authorization: {why}"


def test_load_folders_file_imported_by_an_earlier_sibling_runs_once(tmp_path):
    folder = folder_with(
        tmp_path,
        {
            "a_user.py": """
                from .z_lib import shared_middleware
            """,
            "z_lib.py": """
                from squall import ActionMiddleware

                shared_middleware = ActionMiddleware(name="shared")
            """,
        },
    )

    loaded = load_folders([folder])

    assert [m.name for m in loaded.action_middleware] == ["shared"]


def test_load_folders_two_folders_with_one_name(tmp_path):
    first = folder_with(tmp_path / "one", {"hello.py": declaration("first_hello")})
    second = folder_with(tmp_path / "two", {"hello.py": declaration("second_hello")})

    loaded = load_folders([first, second])

    assert sorted(a.name for a in loaded.actions) == ["first_hello", "second_hello"]


def test_load_folders_again_sees_changed_files(tmp_path):
    folder = folder_with(tmp_path, {"thing.py": declaration("before")})
    load_folders([folder])
    (folder / "thing.py").write_text(declaration("after"))

    loaded = load_folders([folder])

    assert [a.name for a in loaded.actions] == ["after"]
