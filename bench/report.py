"""Turn repeated measurements into the one table the suite prints, and into bench/RESULTS.md.

Ratios are computed per repetition (Squall and the server it is compared with measured minutes
apart in the same run) and only then summarised, because absolute rates drift with whatever else
the machine is doing. Two ratios are shown: to ActionHero (issue 6's and issue 12's targets) and
to the pre-change commit (issue 12: the rewrite may cost at most 10 % per operation).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field

SERVERS = ("squall", "pre", "floor", "actionhero")
#: The heading of the soak's own section of RESULTS.md, which a benchmark run keeps.
SOAK_HEADING = "## Soak"
HEADERS = ("Squall", "pre-change", "floor", "ActionHero")
#: The servers Squall's value is divided by, one ratio column each.
COMPARED = ("actionhero", "pre")
_SHORT = {"actionhero": "AH", "pre": "pre"}


@dataclass(frozen=True)
class Target:
    """A goal on the ratio Squall/``against`` (``>=``, ``<=``), or, with ``against=None``, on
    Squall's own value (``<``)."""

    op: str
    value: float
    against: str | None = "actionhero"

    def text(self) -> str:
        """How the target reads in the table."""
        subject = f"Squall/{_SHORT[self.against]}" if self.against else "Squall"
        return f"{subject} {self.op} {self.value:g}"

    def met(self, ratio: float | None) -> bool | None:
        """True/False on ``ratio`` (or Squall's value), None when there is nothing to judge."""
        if ratio is None:
            return None
        return {">=": ratio >= self.value, "<=": ratio <= self.value, "<": ratio < self.value}[
            self.op
        ]


@dataclass(frozen=True)
class Metric:
    """One row of the table: a key into the samples, its label, number format and target."""

    key: str
    label: str
    digits: int = 0
    target: Target | None = None


#: Issue 12: the new transport may cost at most 10 % more CPU per operation than the old one.
PER_OPERATION_VS_PRE = Target("<=", 1.1, against="pre")


def _ws(prefix: str, title: str) -> list[Metric]:
    return [
        Metric(
            f"{prefix}.deliveries_per_s", f"fan-out deliveries/s, {title}", 0, Target(">=", 2.0)
        ),
        Metric(f"{prefix}.p50_ms", f"fan-out delivery p50 ms, {title}", 2),
        Metric(f"{prefix}.p99_ms", f"fan-out delivery p99 ms, {title}", 2),
        Metric(
            f"{prefix}.cpu_us_per_delivery",
            f"server CPU µs per delivery, {title}",
            1,
            PER_OPERATION_VS_PRE,
        ),
    ]


def _history(backend: str, title: str) -> list[Metric]:
    """Issue 15: a say in a room with history costs at most 1.5x one without, same run."""
    return [
        Metric(f"history.{backend}.cpu_us_per_say_off", f"server CPU µs per say, {title}", 1),
        Metric(
            f"history.{backend}.cpu_us_per_say_on",
            f"server CPU µs per say with history, {title}",
            1,
        ),
        Metric(
            f"history.{backend}.cpu_ratio",
            f"CPU per say, history on / off, {title}",
            2,
            Target("<=", 1.5, against=None),
        ),
    ]


def _recovery(backend: str, title: str, target: Target | None) -> list[Metric]:
    """Issue 15: a join that recovers 100 missed messages answers within 10 ms on one server."""
    what = "roomAdd recovering 100 missed messages"
    return [
        Metric(f"recovery.{backend}.p50_ms", f"{what} p50 ms, {title}", 2),
        Metric(f"recovery.{backend}.p99_ms", f"{what} p99 ms, {title}", 2, target),
    ]


def _http(key: str, title: str, rate: float) -> list[Metric]:
    return [
        Metric(f"http.{key}.req_per_s", f"HTTP {title} req/s, 50 conns", 0, Target(">=", rate)),
        Metric(f"http.{key}.p99_ms", f"HTTP {title} p99 ms", 2, Target("<=", 1.0)),
        Metric(f"http.{key}.cpu_us_per_req", f"server CPU µs per HTTP {title}", 1),
    ]


METRICS: list[Metric] = [
    Metric("rpc.rt_per_s", "WS action round trips/s, 50 clients", 0, Target(">=", 1.0)),
    Metric("rpc.p50_ms", "WS action p50 ms", 2),
    Metric("rpc.p99_ms", "WS action p99 ms", 2, Target("<=", 1.0)),
    Metric("rpc.cpu_us_per_rt", "server CPU µs per WS round trip", 1, PER_OPERATION_VS_PRE),
    *_ws("fanout200", "room of 200"),
    *_ws("fanout2000", "room of 2 000"),
    Metric("connect.connects_per_s@2000", "connects/s, 2 000 connections", 0),
    Metric("connect.cpu_us_per_connect@2000", "server CPU µs per connect, 2 000", 0),
    Metric(
        "connect.rss_kib_per_conn@2000",
        "RSS KiB per idle WS connection, 2 000",
        1,
        Target("<=", 0.6),
    ),
    Metric("connect.connects_per_s@10000", "connects/s, 10 000 connections", 0),
    Metric(
        "connect.cpu_us_per_connect@10000",
        "server CPU µs per connect, 10 000",
        0,
        Target("<=", 1.0),
    ),
    Metric(
        "connect.rss_kib_per_conn@10000",
        "RSS KiB per idle WS connection, 10 000",
        1,
        Target("<=", 0.6),
    ),
    Metric(
        "connect.idle_cpu_pct",
        "server CPU % of a core, 10 000 idle, heartbeat on",
        2,
        Target("<", 5.0, against=None),
    ),
    *_http("randomNumber", "GET /api/randomNumber", 2.0),
    *_http("status", "GET /api/status", 2.0),
    *_http("static", "GET /public/chat.html", 1.3),
    Metric(
        "frame.cpu_ms_per_frame",
        "server CPU (loop time) ms per 1 MiB masked binary frame",
        2,
        Target("<", 1.0, against=None),
    ),
    Metric("frame.p50_ms", "1 MiB frame round trip p50 ms", 2),
    Metric(
        "cluster1.deliveries_per_s", "cluster fan-out deliveries/s, 1 Squall process + Redis", 0
    ),
    Metric(
        "cluster2.deliveries_per_s", "cluster fan-out deliveries/s, 2 Squall processes + Redis", 0
    ),
    Metric("cluster1.cpu_us_per_delivery", "server CPU µs per delivery, 1 process + Redis", 1),
    Metric("cluster2.cpu_us_per_delivery", "server CPU µs per delivery, 2 processes + Redis", 1),
    Metric("cluster2.missing", "deliveries lost or doubled, 2 processes + Redis", 0),
    Metric(
        "cluster2.cost_vs_memory",
        "CPU per delivery, 2 processes + Redis / 1 process in memory (room of 2 000)",
        2,
        Target("<=", 1.3, against=None),
    ),
    *_history("memory", "in memory"),
    *_history("redis", "through Redis"),
    Metric(
        "presence.frames_per_member_per_change",
        "presence frames each member gets per join or leave, room of 2 000",
        2,
        Target("<=", 1.0, against=None),
    ),
    Metric(
        "presence.encodes_per_change",
        "JSON encodings per join or leave, room of 2 000 (in process)",
        1,
        Target("<=", 1.0, against=None),
    ),
    Metric("presence.cpu_us_per_presence_frame", "server CPU µs per presence frame, 2 000", 1),
    Metric("presence.cpu_us_per_say_delivery", "server CPU µs per say delivery, same room", 1),
    *_recovery("memory", "one server", Target("<", 10.0, against=None)),
    *_recovery("redis", "through Redis", None),
    Metric(
        "recovery.redis.evalsha_per_recovery",
        "Redis history reads (EVALSHA) per recovery of 100",
        2,
        Target("<=", 1.0, against=None),
    ),
]


@dataclass
class Results:
    """Samples per (metric, server), one slot per repetition, plus reasons for missing values."""

    repeat: int
    samples: dict[tuple[str, str], list[float | None]] = field(default_factory=dict)
    reasons: dict[tuple[str, str], str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    background: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    #: ``uptime``'s load averages as the run went: (when, (1 min, 5 min, 15 min))
    loads: list[tuple[str, tuple[float, float, float]]] = field(default_factory=list)

    def add(self, key: str, server: str, rep: int, value: float | None) -> None:
        """Record one measurement (None = measured nothing usable)."""
        slots = self.samples.setdefault((key, server), [None] * self.repeat)
        slots[rep] = value

    def missing(self, prefix: str, server: str, reason: str) -> None:
        """Every metric under ``prefix`` for ``server`` is unavailable, and why."""
        for metric in METRICS:
            if metric.key.startswith(prefix):
                self.reasons.setdefault((metric.key, server), reason)

    def values(self, key: str, server: str) -> list[float]:
        return [v for v in self.samples.get((key, server), []) if v is not None]

    def ratios(self, key: str, against: str) -> list[float]:
        """Squall / ``against`` per repetition where both were measured."""
        squall = self.samples.get((key, "squall"), [])
        other = self.samples.get((key, against), [])
        return [s / o for s, o in zip(squall, other, strict=False) if s is not None and o]


def _number(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}".replace(",", " ")


def _cell(results: Results, metric: Metric, server: str) -> str:
    values = results.values(metric.key, server)
    if values:
        return _number(statistics.median(values), metric.digits)
    reason = results.reasons.get((metric.key, server))
    return f"n/a: {reason}" if reason else "—"


def _ratio(ratios: list[float]) -> str:
    if not ratios:
        return "—"
    text = f"{statistics.median(ratios):.2f}"
    return text + (f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else "")


def table(results: Results) -> str:
    """The markdown table: medians per server, the ratios to ActionHero and to the pre-change
    commit (medians of same-repetition ratios), the target and PASS/MISS."""
    lines = [
        "| metric | "
        + " | ".join(HEADERS)
        + " | Squall/ActionHero | Squall/pre-change | target | result |",
        "|---|" + "---:|" * len(HEADERS) + "---:|---:|---|---|",
    ]
    for metric in METRICS:
        ratios = {against: results.ratios(metric.key, against) for against in COMPARED}
        verdict = ""
        if metric.target is not None:
            against = metric.target.against
            judged = ratios[against] if against else results.values(metric.key, "squall")
            met = metric.target.met(statistics.median(judged) if judged else None)
            verdict = "n/a" if met is None else "PASS" if met else "MISS"
        cells = [_cell(results, metric, server) for server in SERVERS]
        target = metric.target.text() if metric.target else ""
        lines.append(
            f"| {metric.label} | "
            + " | ".join(cells)
            + "".join(f" | {_ratio(ratios[against])}" for against in COMPARED)
            + f" | {target} | {verdict} |"
        )
    return "\n".join(lines)


def background_note(results: Results) -> str:
    """One line on how busy the rest of the machine was while each server was measured."""
    parts = [
        f"{name} median {statistics.median(v):.0f} % (max {max(v):.0f} %)"
        for name, v in sorted(results.background.items())
        if v
    ]
    return "CPU used by other processes during measurements, % of one core: " + "; ".join(parts)


def load_note(results: Results) -> str:
    """The machine's load averages (``uptime``) as the run went."""
    return "Load average (1, 5, 15 min) as the run went: " + "; ".join(
        f"{when} {one:.2f} {five:.2f} {fifteen:.2f}" for when, (one, five, fifteen) in results.loads
    )


def results_markdown(
    results: Results, command: str, date: str, machine: dict[str, str], pre_commit: str
) -> str:
    """The whole of bench/RESULTS.md."""
    problems = "\n".join(f"- {p}" for p in results.problems) or "- none"
    return f"""# Squall benchmark results

Latest run of `{command}`, {date}.

Machine: {machine["nproc"]} cores, {machine["cpu"]}, Linux {machine["kernel"]};
{machine["versions"]}.

{table(results)}

Values are medians over {results.repeat} repetition(s); the ratio columns are the median (min-max)
of per-repetition Squall/ActionHero and Squall/pre-change ratios, the servers measured interleaved
in the same run. For latencies, CPU and RSS lower is better. "pre-change" is this repository at
commit {pre_commit} (Tornado's HTTPServer and squall/wsframes.py, before issue 12's transport),
run from a temporary worktree with the same interpreter and config. The floor is a bare Tornado
server (`bench/floor.py`). Clients mask every frame with a random key and send a browser's
headers. "n/a" for the floor and ActionHero in the frame rows: neither answers a binary frame.

{background_note(results)}

{load_note(results)}

Problems seen during the run:
{problems}

Where the time goes, and what a missed target would need: `bench/PROFILE.md`.
"""
