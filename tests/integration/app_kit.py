"""A user's project as the README starts it: a copy of this repository's application files
(``server.py``, ``handlers/``, ``config/``, ``actions/``, ``public/``, ``setup.cfg``, ``ruff.toml``)
in a temporary folder, with Squall itself installed rather than copied. The generator and the
README walkthrough tests work in one, and run its test command the way a user would."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .support import BOOT_TIMEOUT, ROOT, free_port

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


class ProjectServer:
    """``python server.py --port N --env test`` run in a project folder, as its user runs it."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.port = free_port()
        self.log_path = project / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ProjectServer:
        env = {k: v for k, v in os.environ.items() if k not in ("PORT", "SQUALL_ENV")}
        env.pop("SQUALL_REDIS_URL", None)
        command = [sys.executable, "server.py", "--port", str(self.port), "--env", "test"]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(command, cwd=self.project, stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited at boot:\n{self.log_path.read_text()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/public/docs.html", timeout=1) as reply,
            ):
                if reply.status == 200:
                    return self
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=0.1)  # poll interval while booting; exits are caught above
        self.__exit__()
        raise RuntimeError(f"the server was not ready in {BOOT_TIMEOUT}s")

    def __exit__(self, *exc_info: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=BOOT_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=BOOT_TIMEOUT)
