"""``python -m bench profile``: where Squall's CPU goes under one scenario, by py-spy sampling.

Starts a fresh Squall (bench config), puts the scenario's load on it, records py-spy's raw stacks
for a window in the middle of the load, and prints the top functions by self time (where the CPU
is spent) and by inclusive time (which call paths it is spent under). Needs ``py-spy`` (pip); it
samples by reading the process's memory, so run as root or with ptrace allowed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from bench import scenarios, servers
from bench.workers import Target

LOADS = ("rpc", "fanout200", "fanout2000", "http", "static", "connect", "frame", "idle")
# the event loop's own frames: inclusive time is counted below the last of these in each stack
LOOP_FRAMES = ("Runner.run", "run_forever", "_run_once", "Handle._run")


def summarize(raw: str, top: int) -> str:
    """Markdown tables of the ``top`` functions by self and by inclusive share of samples.

    Only the event loop's thread counts (stacks through one of LOOP_FRAMES); py-spy already
    leaves out samples where it sleeps in epoll. Self time in ``Runner.run`` is the loop's own C
    code (uvloop); a system call made from a Python frame is charged to that frame.
    ``raw`` is py-spy's ``--format raw`` output: one ``frame;frame;...;leaf count`` per line.
    Frames are ``function (file:line)``; line numbers are dropped so a function counts once.
    """
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_function(f) for f in stack.split(";")]
        inner = [i for i, f in enumerate(frames) if f.split(" (")[0] in LOOP_FRAMES]
        if not inner:
            continue  # another thread (the loop watchdog, a thread pool): not the server's loop
        total += n
        own[frames[-1]] += n
        for name in set(frames[inner[-1] + 1 :]):
            under[name] += n
    if not total:
        return "no samples (is the server busy? is ptrace allowed?)"
    out = [f"{total} samples", "", "| self % | function |", "|---:|---|"]
    out += [f"| {100 * n / total:.1f} | `{name}` |" for name, n in own.most_common(top)]
    out += ["", "| inclusive % | function |", "|---:|---|"]
    inclusive = [(n, name) for name, n in under.items() if n < total]  # drop the loop's own frames
    out += [
        f"| {100 * n / total:.1f} | `{name}` |" for n, name in sorted(inclusive, reverse=True)[:top]
    ]
    return "\n".join(out)


def _function(frame: str) -> str:
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({path})" if path else name


def _load(load: str, server: servers.Server, seconds: float, port_ready: threading.Event) -> None:
    target = Target("127.0.0.1", (server.port,), server.path, server.dialect)
    port_ready.set()
    if load == "rpc":
        scenarios.rpc(target, [], 50, seconds)
    elif load.startswith("fanout"):
        members = int(load.removeprefix("fanout"))
        scenarios.fanout(target, [], members, messages=int(100_000 * seconds / members))
    elif load == "idle":
        scenarios.connect(target, [], (10000,), idle_s=seconds)
    elif load == "connect":  # handshakes for the whole recording: 10 000 connections
        scenarios.connect(target, [], (10000,))
    elif load == "frame":
        scenarios.frame(target, [], count=int(seconds * 200))
    else:
        from bench import httpload, runner

        path = runner.STATIC_PATH if load == "static" else "/api/randomNumber"
        httpload.http("127.0.0.1", server.port, path, [], 50, seconds)


def _wait_open_files(pid: int, count: int, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and len(os.listdir(f"/proc/{pid}/fd")) < count:
        time.sleep(0.5)


def profile(load: str, seconds: float, top: int, ping_ms: int) -> str:
    """Run ``load`` on a fresh Squall and return the summary of a ``seconds``-long recording."""
    py_spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if not py_spy:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    run_dir = Path(tempfile.mkdtemp(prefix="squall-profile-"))
    server = servers.start_squall(
        servers.free_port(), run_dir, servers.squall_config(run_dir, ping_ms)
    )
    try:
        ready = threading.Event()
        hold = seconds + (130 if load == "idle" else 8)  # idle: the handshakes come first
        worker = threading.Thread(target=_load, args=(load, server, hold, ready), daemon=True)
        worker.start()
        ready.wait()
        if load == "idle":  # record the hold, not the 10 000 handshakes before it
            _wait_open_files(server.pids[0], 10000, limit_s=120)
        time.sleep(1 if load == "connect" else 4)  # into the steady state
        raw = run_dir / "pyspy.txt"
        subprocess.run(
            [
                py_spy,
                "record",
                "-p",
                str(server.pids[0]),
                "-d",
                str(int(seconds)),
                "-r",
                "200",
                "--format",
                "raw",
                "-o",
                str(raw),
            ],
            capture_output=True,
            check=True,
            timeout=seconds + 60,
        )
        worker.join(timeout=120)
        return summarize(raw.read_text(), top) + f"\n\n(raw stacks: {raw})"
    finally:
        server.stop()


def main(argv: list[str]) -> None:
    """``python -m bench profile {rpc,fanout200,fanout2000,http,idle} [-d S] [--top N]``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench profile", description=__doc__.split("\n")[0]
    )
    parser.add_argument("load", choices=LOADS)
    parser.add_argument("-d", "--duration", type=float, default=10.0, help="recording seconds")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--ping-ms", type=int, default=25000, help="Squall pingInterval")
    args = parser.parse_args(argv)
    print(f"## Squall under {args.load}\n", flush=True)
    print(profile(args.load, args.duration, args.top, args.ping_ms))
    sys.stdout.flush()
