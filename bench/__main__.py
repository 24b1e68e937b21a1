"""``python -m bench {run,load,profile,inproc,floor,logcost}``: the suite, one scenario by hand,
a py-spy profile of Squall under one load, Squall's CPU per operation in one process, the floor
server, or the cost of info logging."""

from __future__ import annotations

import argparse
import json
import sys

from bench import floor, inproc, logcost, profile, runner, scenarios
from bench.limits import require_loopback
from bench.workers import Target


def load(argv: list[str]) -> None:
    """One scenario against an already running server; prints one JSON line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench load", description="one load scenario, by hand"
    )
    parser.add_argument("scenario", choices=["rpc", "fanout", "connect"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, action="append", required=True, help="repeat for a cluster"
    )
    parser.add_argument("--path", default="/primus")
    parser.add_argument("--dialect", choices=["plain", "primus"], default="plain")
    parser.add_argument(
        "--server-pid", type=int, action="append", default=[], help="read its CPU/RSS"
    )
    parser.add_argument("--procs", type=int, default=1, help="generator processes")
    parser.add_argument("-c", "--connections", type=int, default=50, help="rpc")
    parser.add_argument("-t", "--duration", type=float, default=10.0, help="rpc")
    parser.add_argument("--action", default="randomNumber", help="rpc")
    parser.add_argument("-n", "--members", type=int, default=200, help="fanout")
    parser.add_argument("-m", "--messages", type=int, default=200, help="fanout")
    parser.add_argument("--window", type=int, default=1, help="fanout: un-acked says in flight")
    parser.add_argument(
        "-k", "--stages", type=int, nargs="+", default=[2000], help="connect: totals"
    )
    parser.add_argument(
        "--idle", type=float, default=0.0, help="connect: hold the last stage this long"
    )
    args = parser.parse_args(argv)
    try:
        host = require_loopback(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    target = Target(host, tuple(args.port), args.path, args.dialect)
    if args.scenario == "rpc":
        result = scenarios.rpc(
            target, args.server_pid, args.connections, args.duration, args.action, args.procs
        )
    elif args.scenario == "fanout":
        result = scenarios.fanout(
            target, args.server_pid, args.members, args.messages, args.window, args.procs
        )
    else:
        result = scenarios.connect(
            target, args.server_pid, tuple(args.stages), args.idle, args.procs
        )
    print(json.dumps(result, default=str), flush=True)


def main(argv: list[str]) -> None:
    """Dispatch on the first word."""
    commands = {
        "run": runner.main,
        "load": load,
        "floor": floor.main,
        "profile": profile.main,
        "inproc": inproc.main,
        "logcost": logcost.main,
    }
    if not argv or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    commands[argv[0]](argv[1:])


main(sys.argv[1:])
