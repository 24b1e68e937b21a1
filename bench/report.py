"""Turn repeated measurements into the one table the suite prints, and into bench/RESULTS.md.

Ratios are computed per repetition (Squall and ActionHero measured minutes apart in the same run)
and only then summarised, because absolute rates drift with whatever else the machine is doing.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field

SERVERS = ("squall", "floor", "actionhero")
#: The heading of the soak's own section of RESULTS.md, which a benchmark run keeps.
SOAK_HEADING = "## Soak"
HEADERS = ("Squall", "floor", "ActionHero")


@dataclass(frozen=True)
class Target:
    """A goal: on the Squall/ActionHero ratio (``>=``, ``<=``), or on Squall's own value (``<``)."""

    op: str
    value: float
    on_ratio: bool = True

    def text(self) -> str:
        """How the target reads in the table."""
        return f"{'ratio' if self.on_ratio else 'Squall'} {self.op} {self.value:g}"

    def met(self, ratio: float | None, squall: float | None) -> bool | None:
        """True/False, or None when there is nothing to judge."""
        x = ratio if self.on_ratio else squall
        if x is None:
            return None
        return {">=": x >= self.value, "<=": x <= self.value, "<": x < self.value}[self.op]


@dataclass(frozen=True)
class Metric:
    """One row of the table: a key into the samples, its label, number format and target."""

    key: str
    label: str
    digits: int = 0
    target: Target | None = None


def _ws(prefix: str, title: str) -> list[Metric]:
    return [
        Metric(
            f"{prefix}.deliveries_per_s", f"fan-out deliveries/s, {title}", 0, Target(">=", 2.0)
        ),
        Metric(f"{prefix}.p50_ms", f"fan-out delivery p50 ms, {title}", 2),
        Metric(f"{prefix}.p99_ms", f"fan-out delivery p99 ms, {title}", 2),
        Metric(f"{prefix}.cpu_us_per_delivery", f"server CPU µs per delivery, {title}", 1),
    ]


METRICS: list[Metric] = [
    Metric("rpc.rt_per_s", "WS action round trips/s, 50 clients", 0, Target(">=", 1.0)),
    Metric("rpc.p50_ms", "WS action p50 ms", 2),
    Metric("rpc.p99_ms", "WS action p99 ms", 2, Target("<=", 1.0)),
    Metric("rpc.cpu_us_per_rt", "server CPU µs per WS round trip", 1),
    *_ws("fanout200", "room of 200"),
    *_ws("fanout2000", "room of 2 000"),
    Metric("connect.connects_per_s@2000", "connects/s, 2 000 connections", 0),
    Metric(
        "connect.rss_kib_per_conn@2000",
        "RSS KiB per idle WS connection, 2 000",
        1,
        Target("<=", 0.6),
    ),
    Metric("connect.connects_per_s@10000", "connects/s, 10 000 connections", 0),
    Metric("connect.cpu_us_per_connect@10000", "server CPU µs per connect, 10 000", 0),
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
        Target("<", 5.0, on_ratio=False),
    ),
    Metric(
        "http.randomNumber.req_per_s",
        "HTTP GET /api/randomNumber req/s, 50 conns",
        0,
        Target(">=", 1.0),
    ),
    Metric("http.randomNumber.p99_ms", "HTTP /api/randomNumber p99 ms", 2),
    Metric("http.randomNumber.cpu_us_per_req", "server CPU µs per HTTP randomNumber", 1),
    Metric("http.status.req_per_s", "HTTP GET /api/status req/s, 50 conns", 0, Target(">=", 1.0)),
    Metric("http.status.p99_ms", "HTTP /api/status p99 ms", 2),
    Metric("http.status.cpu_us_per_req", "server CPU µs per HTTP status", 1),
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
        Target("<=", 1.3, on_ratio=False),
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

    def ratios(self, key: str) -> list[float]:
        """Squall / ActionHero per repetition where both were measured."""
        squall = self.samples.get((key, "squall"), [])
        anchor = self.samples.get((key, "actionhero"), [])
        return [s / a for s, a in zip(squall, anchor, strict=False) if s is not None and a]


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
    """The markdown table: medians per server, Squall/ActionHero ratio, target, PASS/MISS."""
    lines = [
        "| metric | "
        + " | ".join(HEADERS)
        + " | Squall/ActionHero median (min-max) | target | result |",
        "|---|" + "---:|" * len(HEADERS) + "---:|---|---|",
    ]
    for metric in METRICS:
        ratios = results.ratios(metric.key)
        squall = results.values(metric.key, "squall")
        verdict = ""
        if metric.target is not None:
            met = metric.target.met(
                statistics.median(ratios) if ratios else None,
                statistics.median(squall) if squall else None,
            )
            verdict = "n/a" if met is None else "PASS" if met else "MISS"
        cells = [_cell(results, metric, server) for server in SERVERS]
        target = metric.target.text() if metric.target else ""
        lines.append(
            f"| {metric.label} | "
            + " | ".join(cells)
            + f" | {_ratio(ratios)} | {target} | {verdict} |"
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


def results_markdown(results: Results, command: str, date: str, machine: dict[str, str]) -> str:
    """The whole of bench/RESULTS.md."""
    problems = "\n".join(f"- {p}" for p in results.problems) or "- none"
    return f"""# Squall benchmark results

Latest run of `{command}`, {date}.

Machine: {machine["nproc"]} cores, {machine["cpu"]}, Linux {machine["kernel"]};
{machine["versions"]}.

{table(results)}

Values are medians over {results.repeat} repetition(s); the ratio column is the median (min-max)
of per-repetition Squall/ActionHero ratios, the servers measured interleaved in the same run. For
latencies, CPU and RSS lower is better. The floor is a bare Tornado server (`bench/floor.py`).

{background_note(results)}

Problems seen during the run:
{problems}

Where the time goes, and what a missed target would need: `bench/PROFILE.md`.
"""
