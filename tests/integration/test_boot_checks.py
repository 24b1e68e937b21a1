"""Boots that fail closed: an app or config mistake the boot can see
stops it with exit 2 and a sentence naming the file, as a broken action file already does; and
``--host`` binds the address it names."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from testkit import BOOT_TIMEOUT, ROOT, free_port

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


def test_boot_environment_without_its_file_is_refused_listing_those_that_exist():
    """``--env prodution`` used to run silently on the development defaults."""
    command = [sys.executable, "server.py", "--port", str(free_port()), "--env", "prodution"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=BOOT_TIMEOUT, text=True)

    assert done.returncode == 2
    assert done.stderr.strip() == (
        "squall: configuration error: config/prodution.yaml: no such environment 'prodution' "
        "(environments: development, production, test)"
    )


@pytest.mark.parametrize("level", ["verbose", "warn"])
def test_boot_log_level_that_is_not_one_is_refused(tmp_path, level):
    code, output = failed_boot(tmp_path, {"general": {"logLevel": level}})

    assert code == 2
    assert (
        f"general.logLevel: expected one of debug, info, warning, error, critical, got {level!r}"
    ) in output


def answers(address: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=1):
        return True
    return False


def test_boot_host_flag_binds_that_address_only():
    """``--host 127.0.0.2`` (a loopback address of its own) answers there and not on 127.0.0.1."""
    port = free_port()
    command = [sys.executable, "server.py", "--env", "test", "--port", str(port)]
    with subprocess.Popen(
        [*command, "--host", "127.0.0.2"], cwd=ROOT, stdout=subprocess.DEVNULL
    ) as proc:
        try:
            deadline = time.monotonic() + BOOT_TIMEOUT
            while not answers("127.0.0.2", port):
                assert proc.poll() is None, "the server exited at boot"
                assert time.monotonic() < deadline, "the server never answered on 127.0.0.2"
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.1)  # poll interval while booting; exits are caught above
            assert not answers("127.0.0.1", port)
        finally:
            proc.terminate()
            proc.wait(timeout=BOOT_TIMEOUT)
