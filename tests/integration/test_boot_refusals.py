"""Boots that fail closed (issue 10 items 9, 10, 11): an app mistake the boot can see stops it
with exit 2 and a sentence naming the file, as a broken action file already does."""

from __future__ import annotations

import textwrap

from .test_boot import failed_boot

AUTH = """
from squall import ActionMiddleware


def require_token(data):
    if data.params.get("token") != "s3cret":
        raise PermissionError("a valid token is required")


auth = ActionMiddleware(name="auth", pre=require_token)
"""

LENIENT = """
from squall import ActionMiddleware

auth = ActionMiddleware(name="auth")  # same name: it would have replaced the real check
"""

WRONG_ARITY = """
from squall import ChatMiddleware


def members_only(connection):
    return None


vip = ChatMiddleware(name="vip", join=members_only)
"""


def actions_folder(tmp_path, files: dict[str, str]) -> dict:
    folder = tmp_path / "actions"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))
    return {"general": {"paths": {"actions": ["actions", str(folder)]}}}


def test_boot_two_middleware_of_one_name_stops_naming_both_files(tmp_path):
    options = actions_folder(tmp_path, {"auth.py": AUTH, "zz_lenient.py": LENIENT})

    code, output = failed_boot(tmp_path, options)

    first, second = tmp_path / "actions" / "auth.py", tmp_path / "actions" / "zz_lenient.py"
    assert code == 2
    assert f"action middleware 'auth' is declared twice ({first} and {second})" in output


def test_boot_hook_of_the_wrong_arity_stops_naming_the_file(tmp_path):
    options = actions_folder(tmp_path, {"vip.py": WRONG_ARITY})

    code, output = failed_boot(tmp_path, options)

    assert code == 2
    assert (
        f"{tmp_path / 'actions' / 'vip.py'}: chat middleware 'vip': join must take "
        "(connection, room), but takes (connection)"
    ) in output
