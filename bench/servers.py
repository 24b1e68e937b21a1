"""Start, identify and stop the servers under test: Squall, Squall as it was before the transport
rewrite ("pre"), the floor and ActionHero.

The runner starts every server itself so each repetition gets fresh processes (RSS per connection
is only meaningful on a process that has not served a load before) and so logging is known to be
off: Squall at logLevel warning through a bench config file, the floor with no access log,
ActionHero at LOG_LEVEL=warning.

"pre" is this repository at :data:`PRE_COMMIT`, checked out for the run into a temporary git
worktree (:func:`pre_checkout`) and started exactly as Squall is, with the same interpreter and
config override: same machine, same run, only the code differs.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench import procstat

REPO = Path(__file__).resolve().parent.parent
SQUALL_PYTHON = REPO / ".venv" / "bin" / "python"


def _anchors() -> Path:
    """``shared/anchors`` beside the repository, or beside its main worktree (a checkout made
    with ``git worktree add`` elsewhere still finds the project's shared folder)."""
    beside = REPO.parent / "shared" / "anchors"
    if beside.exists():
        return beside
    common = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--path-format=absolute", "--git-common-dir"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return Path(common).parent.parent / "shared" / "anchors" if common else beside


ANCHORS = _anchors()
START_ACTIONHERO = ANCHORS / "start_actionhero.sh"
ACTIONHERO_RUN_DIR = Path("/tmp/anchors")
READY_TIMEOUT_S = 60.0
NAMES = ("squall", "pre", "floor", "actionhero")
#: The last commit before the transport rewrite: Tornado's HTTPServer and squall/wsframes.py.
PRE_COMMIT = "d82798e"
#: A bound of Squall's production config raised beyond what any scenario reaches.
OUT_OF_REACH = 1_000_000


class ServerError(RuntimeError):
    """A server did not start; the message carries the end of its log."""


@dataclass
class Server:
    """A running server: what the generator needs (dialect, port, path) and what /proc needs."""

    name: str
    dialect: str
    port: int
    log: Path
    pids: list[int] = field(default_factory=list)
    path: str = "/primus"
    _proc: subprocess.Popen | None = None
    _stop_cmd: list[str] | None = None
    _stop_env: dict[str, str] | None = None

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after 10 s), or the anchor's own stop command."""
        if self._stop_cmd is not None:
            subprocess.run(self._stop_cmd, env=self._stop_env, capture_output=True, timeout=30)
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)

    def alive(self) -> bool:
        """True while the main process exists."""
        return bool(self.pids) and Path(f"/proc/{self.pids[0]}").exists()


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 5) -> str:
    """The last lines of a log, for error messages."""
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_ready(server: Server, proc: subprocess.Popen | None = None) -> None:
    """Poll GET /api/status until it answers 200; fail fast if the process died."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    url = f"http://127.0.0.1:{server.port}/api/status"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServerError(f"{server.name} exited with {proc.returncode}: {tail(server.log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    server.stop()
    raise ServerError(f"{server.name} not ready on :{server.port}: {tail(server.log)}")


def _spawn(
    name: str, dialect: str, cmd: list[str], log: Path, env: dict | None = None, cwd: Path = REPO
) -> Server:
    port = int(cmd[cmd.index("--port") + 1])
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = Server(name, dialect, port, log, [proc.pid], _proc=proc)
    wait_ready(server, proc)
    server.pids = procstat.process_tree(proc.pid)
    return server


def squall_config(run_dir: Path, ping_ms: int, pre: bool = False) -> Path:
    """The bench's override for Squall (merged last): loopback only, no per-request logging, a
    known heartbeat (and a peer timeout longer than it, which the config requires), room for the
    frame scenario's 1 MiB frame.

    Today's production config also bounds sockets (10 000, and 100 per address) and frames (50 a
    second per socket): every benchmark client comes from 127.0.0.1, the connect scenario holds
    10 000 sockets and a round-trip client sends hundreds of frames a second, so those bounds are
    raised out of reach, not switched off: the checks still run on every upgrade and frame, as in
    production. ``pre``: for the pre-change commit, which had none of them and refuses options it
    does not know.

    JSON is YAML, so no YAML writer is needed.
    """
    socket: dict[str, object] = {
        "pingInterval": ping_ms,
        "timeout": max(35000, ping_ms + 10000),
        "maxMessageSize": 2 << 20,
    }
    if not pre:
        socket.update(maxConnections=OUT_OF_REACH, maxConnectionsPerAddress=OUT_OF_REACH)
        socket.update(rateLimit=OUT_OF_REACH)
    config = {
        "general": {"logLevel": "warning"},
        "servers": {"web": {"bindIP": "127.0.0.1"}, "websocket": {"server": socket}},
    }
    path = run_dir / ("pre-bench.yaml" if pre else "squall-bench.yaml")
    path.write_text(json.dumps(config, indent=2))
    return path


def start_squall(
    port: int,
    run_dir: Path,
    config: Path,
    env: dict | None = None,
    root: Path = REPO,
    name: str = "squall",
) -> Server:
    """``server.py --port N --env production --config <bench override>`` from ``root`` (this
    repository, or the pre-change checkout: its ``server.py`` puts its own ``squall`` first)."""
    cmd = [str(SQUALL_PYTHON), str(root / "server.py"), "--port", str(port)]
    cmd += ["--env", "production", "--config", str(config)]
    full_env = {**os.environ, **(env or {})}
    return _spawn(name, "plain", cmd, run_dir / f"{name}-{port}.log", full_env, cwd=root)


@contextlib.contextmanager
def pre_checkout(commit: str = PRE_COMMIT) -> Iterator[Path]:
    """This repository at ``commit`` in a temporary git worktree, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=f"squall-pre-{commit}-"))
    git = ["git", "-C", str(REPO)]
    done = subprocess.run(
        [*git, "worktree", "add", "--detach", str(path), commit], capture_output=True, text=True
    )
    if done.returncode != 0:
        path.rmdir()
        raise ServerError(f"cannot check out {commit}: {done.stderr.strip()[-300:]}")
    try:
        yield path
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(path)], capture_output=True)


def start_floor(port: int, run_dir: Path) -> Server:
    """``python -m bench floor --port N`` with the bench's interpreter."""
    cmd = [sys.executable, "-m", "bench", "floor", "--port", str(port)]
    return _spawn("floor", "plain", cmd, run_dir / f"floor-{port}.log")


def actionhero_available() -> bool:
    """The anchor script exists (``../shared`` is present) and node is installed."""
    return (
        START_ACTIONHERO.exists()
        and subprocess.run(["which", "node"], capture_output=True).returncode == 0
    )


def start_actionhero(port: int) -> Server:
    """The anchor's ``start_actionhero.sh start`` (installs on first use) at LOG_LEVEL=warning."""
    env = {**os.environ, "PORT": str(port), "LOG_LEVEL": "warning"}
    log = ACTIONHERO_RUN_DIR / f"ah-{port}.log"
    done = subprocess.run(
        [str(START_ACTIONHERO), "all"], env=env, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise ServerError(f"actionhero: {done.stderr.strip()[-300:]} {tail(log)}")
    pid = int((ACTIONHERO_RUN_DIR / f"ah-{port}.pid").read_text())
    server = Server(
        "actionhero",
        "primus",
        port,
        log,
        procstat.process_tree(pid),
        _stop_cmd=[str(START_ACTIONHERO), "stop"],
        _stop_env=env,
    )
    wait_ready(server)
    return server


def start(
    name: str, run_dir: Path, configs: dict[str, Path], pre_root: Path | None = None
) -> Server:
    """Start server ``name`` (one of NAMES) on a fresh port; ``configs``: the bench override of
    "squall" and "pre" (:func:`squall_config`); "pre" runs from ``pre_root``."""
    port = free_port()
    if name == "squall":
        return start_squall(port, run_dir, configs["squall"])
    if name == "pre":
        if pre_root is None:
            raise ServerError("pre: no checkout of the pre-change commit")
        return start_squall(port, run_dir, configs["pre"], root=pre_root, name="pre")
    if name == "floor":
        return start_floor(port, run_dir)
    return start_actionhero(port)
