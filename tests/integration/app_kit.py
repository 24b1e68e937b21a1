"""A user's project as the README starts it: a copy of this repository's application files
(``server.py``, ``handlers/``, ``config/``, ``actions/``, ``public/``, ``setup.cfg``, ``ruff.toml``)
in a temporary folder, with Squall itself installed rather than copied. The generator and the
README walkthrough tests work in one, and run its test command the way a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from testkit import BOOT_TIMEOUT, ROOT

#: What a project holds besides Squall itself.
PROJECT_FILES = ["server.py", "setup.cfg", "ruff.toml"]
PROJECT_FOLDERS = ["handlers", "config", "actions", "public"]


def new_project(folder: Path, shipped_actions: bool = True) -> Path:
    """Copy the application files into ``folder``; ``actions/`` is left empty unless
    ``shipped_actions``."""
    folder.mkdir(parents=True)
    for name in PROJECT_FILES:
        shutil.copy(ROOT / name, folder / name)
    ignore = shutil.ignore_patterns("__pycache__", "javascript")
    for name in PROJECT_FOLDERS:
        shutil.copytree(ROOT / name, folder / name, ignore=ignore)
    if not shipped_actions:
        shutil.rmtree(folder / "actions")
        (folder / "actions").mkdir()
    return folder


def run(
    project: Path, *command: str, timeout: float = BOOT_TIMEOUT * 3
) -> subprocess.CompletedProcess:
    """Run ``command`` (``python`` is this interpreter) in ``project``, as its user would."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("PORT", "SQUALL_ENV", "SQUALL_REDIS_URL")
    }
    argv = [sys.executable if command[0] == "python" else command[0], *command[1:]]
    return subprocess.run(
        argv, cwd=project, env=env, capture_output=True, text=True, timeout=timeout
    )


def run_tests(project: Path, *pytest_args: str) -> subprocess.CompletedProcess:
    """The project's test command (``scripts/test`` without its installs): ruff, then pytest."""
    ruff = str(Path(sys.executable).with_name("ruff"))
    for check in ([ruff, "check", "."], [ruff, "format", "--check", "."]):
        result = run(project, *check)
        if result.returncode != 0:
            return result
    return run(project, "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args)
