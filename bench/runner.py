"""``python -m bench run``: every scenario against every server, interleaved, repeated; one table.

Each repetition starts fresh servers (in a rotated order), then runs each scenario on each server
in turn, so the servers see the same machine conditions within minutes of each other. Idle RSS is
measured first, on the untouched processes. Before every measurement the server must be idle
(it may still be closing the previous scenario's connections). Raw results go to a JSON-lines
file in the run directory; the summary table goes to stdout (and to bench/RESULTS.md on request).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import cluster, features, httpload, procstat, report, scenarios, servers
from bench.workers import Target

SCENARIOS = (
    "connect",
    "rpc",
    "fanout",
    "http",
    "static",
    "frame",
    "cluster",
    "history",
    "presence",
    "recovery",
)
#: Scenarios of Squall alone, each on servers of its own (issue 15: presence and history, each
#: beside the same run's figure without the feature).
FEATURES = ("history", "presence", "recovery")
#: The same page on every server that serves files (ActionHero's is 5.6 KB, Squall's 6.9 KB).
STATIC_PATH = "/public/chat.html"
#: Servers that answer a binary frame (with an error push): the frame scenario's subjects.
FRAME_SERVERS = ("squall", "pre")
STAGES = (2000, 10000)
QUIET_CORES = 0.3  # --quiet-wait: the machine counts as quiet below this many busy cores
MIN_JOINED = 0.9  # a fan-out with fewer of its members joined measures another room: n/a
RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"


@dataclass(frozen=True)
class Sizes:
    """How long and how big each scenario is; ``--quick`` trades precision for time."""

    rpc_s: float
    fanout: tuple[tuple[int, int], ...]  # (members, messages)
    idle_s: float
    http_s: float
    cluster: tuple[int, int]  # (members, messages)
    frames: int


FULL = Sizes(
    rpc_s=10, fanout=((200, 300), (2000, 40)), idle_s=30, http_s=5, cluster=(2000, 30), frames=200
)
QUICK = Sizes(
    rpc_s=3, fanout=((200, 100), (2000, 12)), idle_s=10, http_s=3, cluster=(2000, 10), frames=50
)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Meter:
    """The CPU everything else on the machine used while one measurement ran."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.wall = time.monotonic()
        self.busy = procstat.machine_busy_seconds()
        self.server = procstat.cpu_seconds(pids)
        self.children = _children_cpu()  # our generator processes and wrk, once reaped

    def other_cpu_pct(self) -> float:
        """% of one core used by neither the server nor our generator."""
        wall = time.monotonic() - self.wall
        own = procstat.cpu_seconds(self.pids) - self.server + _children_cpu() - self.children
        return 100 * max(0.0, procstat.machine_busy_seconds() - self.busy - own) / wall


class Runner:
    """The run's settings and results; one method per scenario, each measuring one server."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes = QUICK if args.quick else FULL
        self.results = report.Results(repeat=args.repeat)
        self.run_dir = Path(tempfile.mkdtemp(prefix="squall-bench-"))
        self.raw_path = self.run_dir / "measurements.jsonl"
        self.configs = {
            "squall": servers.squall_config(self.run_dir, args.ping_ms),
            "pre": servers.squall_config(self.run_dir, args.ping_ms, pre=True),
        }
        self.pre_root: Path | None = None

    # -- bookkeeping
    def _log(self, rep: int, name: str, scenario: str, result: dict[str, Any]) -> None:
        with open(self.raw_path, "a") as raw:
            line = {"time": time.time(), "rep": rep, "server": name, "scenario": scenario, **result}
            raw.write(json.dumps(line, default=str) + "\n")
        print(f"  rep {rep + 1} {name:10s} {scenario:17s} {_brief(result)}", file=sys.stderr)

    def _problem(self, rep: int, name: str, what: str, result: dict, keys: list[str]) -> None:
        """Note any non-zero error counters of a measurement that still produced numbers."""
        bad = {k: result[k] for k in keys if result.get(k)}
        if bad:
            self.results.problems.append(f"rep {rep + 1}, {name}, {what}: {bad}")

    def _failed(self, rep: int, name: str, prefix: str, exc: Exception) -> None:
        text = f"{type(exc).__name__}: {exc}"[:300]
        self.results.problems.append(f"rep {rep + 1}, {name}, {prefix}: {text}")
        self.results.missing(prefix, name, "failed, see problems")
        print(f"  rep {rep + 1} {name:10s} {prefix:17s} FAILED {text}", file=sys.stderr)

    def _measure(
        self, rep: int, server: servers.Server, scenario: str, fn: Callable[[], dict]
    ) -> dict | None:
        """Wait for an idle server, run ``fn``, log it with the background CPU; None on failure."""
        waited = procstat.wait_idle(server.pids)
        if self.args.quiet_wait:
            waited += procstat.wait_quiet_machine(QUIET_CORES, self.args.quiet_wait)
        meter = Meter(server.pids)
        try:
            result = fn()
        except Exception as exc:  # one failed measurement must not stop the others
            self._failed(rep, server.name, scenario, exc)
            return None
        other = meter.other_cpu_pct()
        self.results.background[server.name].append(other)
        load = os.getloadavg()[0]
        self._log(
            rep,
            server.name,
            scenario,
            {"waited_idle_s": waited, "other_cpu_pct": other, "load_1min": load, **result},
        )
        return result

    def note_load(self, when: str) -> None:
        """Record ``uptime``'s load averages (other sessions share this machine)."""
        load = os.getloadavg()
        self.results.loads.append((when, load))
        print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({when})", file=sys.stderr)

    def _add_fanout(self, rep: int, name: str, prefix: str, members: int, result: dict) -> None:
        self._problem(
            rep, name, prefix, result, ["missing", "say_errors", "join_errors", "bad_frames"]
        )
        if result["members"] < MIN_JOINED * members:
            sample = result.get("join_error_sample") or result.get("connect_error_sample") or [""]
            reason = f"only {result['members']} of {members} joined {sample[0]}".strip()
            self.results.missing(prefix, name, reason)
            return
        for key in ("deliveries_per_s", "p50_ms", "p99_ms", "cpu_us_per_delivery"):
            self.results.add(f"{prefix}.{key}", name, rep, result.get(key))

    # -- scenarios
    def connect(self, rep: int, server: servers.Server) -> None:
        idle = self.sizes.idle_s if server.name == "squall" else 0.0
        target, procs = _target(server), self.args.procs
        result = self._measure(
            rep,
            server,
            "connect",
            lambda: scenarios.connect(target, server.pids, STAGES, idle, procs),
        )
        if result is None:
            return
        for key in ("connects_per_s", "rss_kib_per_conn", "cpu_us_per_connect"):
            for stage in STAGES:
                self.results.add(
                    f"connect.{key}@{stage}", server.name, rep, result[f"{key}@{stage}"]
                )
        self._problem(rep, server.name, "connect", result, [f"connect_errors@{s}" for s in STAGES])
        if not idle:
            return
        self.results.add("connect.idle_cpu_pct", server.name, rep, result["idle_cpu_pct"])
        if not result["idle_pings_answered"]:
            self.results.problems.append(
                f"rep {rep + 1}, {server.name}: no heartbeat in {idle:.0f} s"
            )
        if result["idle_alive"] < STAGES[-1]:
            self.results.problems.append(
                f"rep {rep + 1}, {server.name}: {result['idle_alive']} of {STAGES[-1]} idle "
                "connections survived the hold"
            )

    def rpc(self, rep: int, server: servers.Server) -> None:
        target, seconds, procs = _target(server), self.sizes.rpc_s, self.args.procs
        result = self._measure(
            rep,
            server,
            "rpc",
            lambda: scenarios.rpc(target, server.pids, 50, seconds, procs=procs),
        )
        if result is None:
            return
        for key in ("rt_per_s", "p50_ms", "p99_ms", "cpu_us_per_rt"):
            self.results.add(f"rpc.{key}", server.name, rep, result[key])
        self._problem(rep, server.name, "rpc", result, ["errors", "lost", "connect_errors"])

    def fanout(self, rep: int, server: servers.Server) -> None:
        for members, messages in self.sizes.fanout:
            prefix = f"fanout{members}"
            result = self._measure(
                rep,
                server,
                prefix,
                lambda m=members, n=messages: scenarios.fanout(
                    _target(server), server.pids, m, n, procs=self.args.procs
                ),
            )
            if result is not None:
                self._add_fanout(rep, server.name, prefix, members, result)

    def http(self, rep: int, server: servers.Server) -> None:
        for action in ("randomNumber", "status"):
            self._http(rep, server, action, f"/api/{action}")

    def static(self, rep: int, server: servers.Server) -> None:
        if server.name == "floor":
            self.results.missing("http.static", server.name, "serves no files")
            return
        self._http(rep, server, "static", STATIC_PATH)

    def _http(self, rep: int, server: servers.Server, name: str, path: str) -> None:
        result = self._measure(
            rep,
            server,
            f"http.{name}",
            lambda: httpload.http(
                "127.0.0.1", server.port, path, server.pids, 50, self.sizes.http_s
            ),
        )
        if result is None:
            return
        for key in ("req_per_s", "p99_ms", "cpu_us_per_req"):
            self.results.add(f"http.{name}.{key}", server.name, rep, result.get(key))
        self._problem(rep, server.name, f"http {name}", result, ["errors", "socket_errors"])

    def frame(self, rep: int, server: servers.Server) -> None:
        if server.name not in FRAME_SERVERS:
            self.results.missing("frame", server.name, "answers no binary frame")
            return
        target, count = _target(server), self.sizes.frames
        result = self._measure(
            rep, server, "frame", lambda: scenarios.frame(target, server.pids, count)
        )
        if result is not None:
            for key in ("cpu_ms_per_frame", "p50_ms"):
                self.results.add(f"frame.{key}", server.name, rep, result[key])

    def cluster(self, rep: int) -> None:
        members, messages = self.sizes.cluster
        for processes in (1, 2):
            prefix = f"cluster{processes}"
            result = self._alone(
                rep,
                prefix,
                lambda n=processes: cluster.fanout(
                    self.run_dir, self.configs["squall"], n, members, messages, self.args.procs
                ),
            )
            if result is None:
                continue
            self._add_fanout(rep, "squall", prefix, members, result)
            self.results.add(f"{prefix}.missing", "squall", rep, result.get("missing"))
            in_memory = self.results.samples.get(("fanout2000.cpu_us_per_delivery", "squall"))
            cost = result.get("cpu_us_per_delivery")
            if processes == 2 and in_memory and in_memory[rep] and cost:
                # issue 5: scaling out may cost at most 1.3x the in-memory CPU per delivery
                self.results.add(f"{prefix}.cost_vs_memory", "squall", rep, cost / in_memory[rep])

    def _alone(
        self, rep: int, name: str, measure: Callable[[], dict[str, Any]]
    ) -> dict[str, Any] | None:
        """A measurement that starts Squall (and Redis) itself; logged, or None when it
        could not run (n/a and why) or failed (a problem)."""
        try:
            result = measure()
        except cluster.ClusterUnavailable as exc:
            self.results.missing(name, "squall", str(exc)[:200])
            print(f"  rep {rep + 1} squall     {name:17s} n/a: {exc}", file=sys.stderr)
            return None
        except Exception as exc:  # one failed measurement must not lose the rest of the run
            self._failed(rep, "squall", name, exc)
            return None
        self._log(rep, "squall", name, result)
        return result

    def _feature(
        self, rep: int, name: str, measure: Callable[[], dict[str, Any]]
    ) -> dict[str, Any] | None:
        """One features measurement (``features.py``), its numbers under ``name.<key>``."""
        result = self._alone(rep, name, measure)
        for key, value in (result or {}).items():
            if isinstance(value, (int, float)):
                self.results.add(f"{name}.{key}", "squall", rep, value)
        return result

    def history(self, rep: int) -> None:
        sizes = features.QUICK if self.args.quick else features.FULL
        for redis in (False, True):
            self._feature(
                rep,
                f"history.{'redis' if redis else 'memory'}",
                lambda r=redis: features.history(self.run_dir, self.configs["squall"], r, sizes),
            )

    def presence(self, rep: int) -> None:
        sizes = features.QUICK if self.args.quick else features.FULL
        self._feature(
            rep, "presence", lambda: features.presence(self.run_dir, self.configs["squall"], sizes)
        )

    def recovery(self, rep: int) -> None:
        sizes = features.QUICK if self.args.quick else features.FULL
        for redis in (False, True):
            name = f"recovery.{'redis' if redis else 'memory'}"
            result = self._feature(
                rep,
                name,
                lambda r=redis: features.recovery(self.run_dir, self.configs["squall"], r, sizes),
            )
            if result is not None and result["recovered_whole"] != result["recoveries"]:
                self.results.problems.append(
                    f"rep {rep + 1}, squall, {name}: only {result['recovered_whole']} of "
                    f"{result['recoveries']} recoveries got every missed message"
                )

    # -- the run
    def _phase(self, rep: int, order: list[str], scenarios_: list[str]) -> None:
        """Start fresh servers, run ``scenarios_`` on each in ``order``, stop them."""
        running: dict[str, servers.Server] = {}
        try:
            for name in order:
                try:
                    running[name] = servers.start(name, self.run_dir, self.configs, self.pre_root)
                except Exception as exc:  # a server that cannot start leaves its column n/a
                    self.results.problems.append(
                        f"rep {rep + 1}, {name} did not start: {exc}"[:300]
                    )
                    self.results.missing("", name, "did not start")
            for scenario in scenarios_:
                for name in order:
                    if name in running:
                        getattr(self, scenario)(rep, running[name])
        finally:
            for server in running.values():
                server.stop()

    def repetition(self, rep: int) -> None:
        """Servers in a rotated order. ``connect`` gets processes of its own: RSS needs an untouched
        baseline, and tearing down 10 000 connections must not leak into the next scenario."""
        names = list(self.args.servers)
        order = names[rep % len(names) :] + names[: rep % len(names)]
        wanted = self.args.scenarios
        if "connect" in wanted:
            self._phase(rep, order, ["connect"])
        rest = [s for s in wanted if s not in ("connect", "cluster", *FEATURES)]
        if rest:
            self._phase(rep, order, rest)
        if "cluster" in wanted and "squall" in names:
            self.cluster(rep)
        for feature in FEATURES:
            if feature in wanted and "squall" in names:
                getattr(self, feature)(rep)

    def run(self) -> str:
        """All repetitions; returns the table."""
        started = time.monotonic()
        with contextlib.ExitStack() as stack:
            if "pre" in self.args.servers:  # the pre-change commit, checked out for this run
                self.pre_root = stack.enter_context(servers.pre_checkout(self.args.pre_commit))
            for rep in range(self.args.repeat):
                print(
                    f"repetition {rep + 1}/{self.args.repeat} (raw: {self.raw_path})",
                    file=sys.stderr,
                )
                self.note_load(f"start of repetition {rep + 1}")
                self.repetition(rep)
        self.note_load("end")
        print(f"done in {time.monotonic() - started:.0f} s", file=sys.stderr)
        return report.table(self.results)


def _target(server: servers.Server) -> Target:
    return Target("127.0.0.1", (server.port,), server.path, server.dialect)


def _brief(result: dict[str, Any]) -> str:
    keys = (
        "rt_per_s",
        "deliveries_per_s",
        "req_per_s",
        "p99_ms",
        "rss_kib_per_conn@10000",
        "idle_cpu_pct",
        "other_cpu_pct",
    )
    return " ".join(f"{k}={result[k]:.1f}" for k in keys if isinstance(result.get(k), float))


def _version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return "not installed"


def machine() -> dict[str, str]:
    """procstat.machine() plus the versions that shape the numbers."""
    info = procstat.machine()
    versions = [f"Python {platform.python_version()}", f"node {_version(['node', '--version'])}"]
    for dist in ("tornado", "httptools", "websockets", "uvloop", "orjson"):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist} not installed")
    info["versions"] = ", ".join(versions)
    return info


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The ``run`` command line; drops ActionHero with a note when its anchor is unavailable."""
    parser = argparse.ArgumentParser(prog="python -m bench run", description=__doc__.split("\n")[0])
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--servers", nargs="+", choices=servers.NAMES, default=list(servers.NAMES))
    parser.add_argument("--repeat", type=int, default=None, help="repetitions (default 3, quick 1)")
    parser.add_argument("--quick", action="store_true", help="shorter scenarios: about 3 minutes")
    parser.add_argument(
        "--procs", type=int, default=1, help="load-generator processes per scenario"
    )
    parser.add_argument(
        "--ping-ms",
        type=int,
        default=25000,
        help="Squall's servers.websocket.server.pingInterval for the run (default: its default)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        metavar="S",
        help=f"before each measurement wait up to S s for the machine to be under {QUIET_CORES} "
        "busy cores (other sessions share it); default 0: do not wait",
    )
    parser.add_argument(
        "--pre-commit",
        default=servers.PRE_COMMIT,
        help="the commit measured as the pre-change server (default: %(default)s, the last "
        "before issue 12's transport)",
    )
    parser.add_argument(
        "--write-results",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write bench/RESULTS.md (default: only after a full run of every scenario and server)",
    )
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    args.repeat = max(1, min(args.repeat, 20))
    if "actionhero" in args.servers and not servers.actionhero_available():
        print("ActionHero anchor not available (no ../shared or node): skipped", file=sys.stderr)
        args.servers.remove("actionhero")
    if args.write_results is None:
        args.write_results = not args.quick and argv_is_full(args)
    return args


def argv_is_full(args: argparse.Namespace) -> bool:
    """Every scenario on every server: a run RESULTS.md may be written from."""
    return set(args.scenarios) == set(SCENARIOS) and set(args.servers) == set(servers.NAMES)


def main(argv: list[str]) -> None:
    """Run, print the table, optionally write RESULTS.md."""
    args = parse_args(argv)
    where = machine()  # before the run: a failure here must not cost a finished run
    runner = Runner(args)
    table = runner.run()
    print(table)
    if args.write_results:
        command = "python -m bench run " + shlex.join(argv)
        date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        text = report.results_markdown(
            runner.results, command.strip(), date, where, args.pre_commit
        )
        # The soak (bench/soak.py) records its last result in a section of its own: keep it.
        previous = RESULTS_MD.read_text() if RESULTS_MD.exists() else ""
        soak = previous.find(report.SOAK_HEADING)
        RESULTS_MD.write_text(text + ("\n" + previous[soak:] if soak >= 0 else ""))
        print(f"wrote {RESULTS_MD}", file=sys.stderr)
