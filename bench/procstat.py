"""Server CPU and memory as Linux reports them in /proc, for a process and its descendants.

Reading /proc rather than asking the server keeps the three servers (Python and node) measured the
same way, and summing over descendants makes multi-process servers comparable to single ones.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _stat_fields(pid: int) -> list[str]:
    # the command name may contain spaces and parentheses: split after the last ')'
    text = Path(f"/proc/{pid}/stat").read_text()
    return text.rsplit(")", 1)[1].split()


def process_tree(root: int) -> list[int]:
    """``root`` and every live descendant, found by walking the ppid links in /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry.name))[1])
        except (OSError, IndexError, ValueError):
            continue  # exited while we looked
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime (all threads) summed over ``pids``; processes that exited count as 0."""
    total = 0
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def rss_kib(pids: list[int]) -> int:
    """Resident set size in KiB summed over ``pids`` (from /proc/<pid>/statm)."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except OSError:
            continue
    return total * PAGE_KIB


def machine() -> dict[str, str]:
    """nproc, CPU model and kernel: what RESULTS.md needs to say where it was measured."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {"nproc": str(os.cpu_count()), "cpu": model, "kernel": os.uname().release}


def machine_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine, all cores (user nice system irq softirq steal).

    Minus the server's and the generator's own CPU this is what everything else on the machine
    used during a measurement: the noise the report shows next to the numbers.
    """
    with open("/proc/stat") as stat:
        ticks = [int(x) for x in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def wait_idle(pids: list[int], below: float = 0.1, limit_s: float = 90.0) -> float:
    """Wait until ``pids`` use less than ``below`` of a core over half a second; return the wait.

    A server that is still tearing down the previous scenario's connections (10 000 of them keep
    ActionHero busy for about a minute) would otherwise be measured while busy with that.
    """
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        before = cpu_seconds(pids)
        time.sleep(0.5)
        if cpu_seconds(pids) - before < below * 0.5:
            break
    return time.monotonic() - start


def wait_quiet_machine(below: float, limit_s: float) -> float:
    """Wait until the whole machine is busier than idle by less than ``below`` cores over a
    second, for at most ``limit_s``; return the wait. Other sessions' test runs share these cores.
    """
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        before = machine_busy_seconds()
        time.sleep(1.0)
        if machine_busy_seconds() - before < below:
            break
    return time.monotonic() - start
