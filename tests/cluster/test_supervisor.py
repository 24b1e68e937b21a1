"""The supervisor of ``--workers`` with stand-in workers (``supervised.py``) that fail on demand: a
failed first boot stops everything, a crash loop backs off and says so, a clean exit is not an
error, SIGHUP replaces workers one at a time and stops when a successor fails, SIGTERM stops them
all."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from testkit import TIMEOUT, eventually

HERE = Path(__file__).resolve().parent


class Supervised:
    """``supervised.py DIR 2`` as a subprocess, with its log and its workers' traces."""

    def __init__(self, workdir: Path, workers: int = 2) -> None:
        self.workdir = workdir
        self.log_path = workdir / "supervisor.log"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / "supervised.py"), str(workdir), str(workers)],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text()

    def started(self, slot: int) -> list[int]:
        """Pids of the workers started in ``slot``, oldest first."""
        found = [
            (path.stat().st_mtime_ns, int(path.name.rpartition("-")[2]))
            for path in self.workdir.glob(f"started-{slot}-*")
        ]
        return [pid for _, pid in sorted(found)]

    async def wait_log(self, pattern: str, count: int = 1) -> list[str]:
        """Until ``pattern`` (a regex) matched ``count`` log lines; those lines."""
        return await eventually(
            lambda: [line for line in self.log().splitlines() if re.search(pattern, line)],
            lambda lines: len(lines) >= count,
            TIMEOUT,
            f"{count} log lines matching {pattern!r}",
        )

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise


@pytest.fixture
def supervised(tmp_path: Path):
    started: list[Supervised] = []

    def _start(workers: int = 2) -> Supervised:
        started.append(Supervised(tmp_path, workers))
        return started[-1]

    yield _start
    for supervisor in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(supervisor.proc.pid, signal.SIGKILL)
        supervisor.proc.wait(TIMEOUT)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def ready(supervisor: Supervised) -> None:
    await supervisor.wait_log("2 workers ready")


async def test_a_worker_failing_its_first_boot_stops_the_server(supervised, tmp_path):
    (tmp_path / "fail-at-boot").touch()
    supervisor = supervised()
    assert supervisor.proc.wait(TIMEOUT) == 3
    (line,) = [line for line in supervisor.log().splitlines() if "before it was ready" in line]
    assert re.search(
        r"ERROR squall.supervisor: worker \d \(pid \d+\) exited with status 3 before it was "
        r"ready: stopping every worker$",
        line,
    )
    for slot in (0, 1):
        assert not any(alive(pid) for pid in supervisor.started(slot))


async def test_a_crash_loop_backs_off_and_says_so(supervised, tmp_path):
    supervisor = supervised()
    await ready(supervisor)
    (tmp_path / "crash").touch()  # from now on, new workers die as soon as they are ready
    (first,) = supervisor.started(0)
    os.kill(first, signal.SIGKILL)
    lines = await supervisor.wait_log(r"worker 0 .*starting it again in", 2)
    (tmp_path / "crash").unlink()
    assert [re.sub(r"pid \d+|after [\d.]+ s", "…", line.partition(": ")[2]) for line in lines] == [
        "worker 0 (…) was killed by SIGKILL …; starting it again in 0.5 s "
        "(quick exits in a row: 1)",
        "worker 0 (…) exited with status 4 …; starting it again in 1.0 s (quick exits in a row: 2)",
    ]
    assert all(" ERROR " in line for line in lines)
    # once it starts again without crashing, it stays; the other worker was never touched
    survivor = await eventually(
        lambda: supervisor.started(0), lambda pids: len(pids) == 3, TIMEOUT, "a third start"
    )
    assert alive(survivor[-1])
    assert len(supervisor.started(1)) == 1 and alive(supervisor.started(1)[0])
    assert supervisor.stop() == 0


async def test_a_clean_exit_is_not_an_error(supervised):
    supervisor = supervised()
    await ready(supervisor)
    (first,) = supervisor.started(1)
    os.kill(first, signal.SIGTERM)
    (line,) = await supervisor.wait_log(rf"\(pid {first}\) exited cleanly")
    # this one was young: it may be started again after a short delay, never as an error
    assert re.search(
        rf"INFO squall.supervisor: worker 1 \(pid {first}\) exited cleanly after [\d.]+ s; "
        r"starting it again (now|in 0.5 s \(quick exits in a row: 1\))$",
        line,
    )
    await eventually(lambda: supervisor.started(1), lambda pids: len(pids) == 2, TIMEOUT, "restart")
    assert " ERROR " not in supervisor.log()
    assert supervisor.stop() == 0


async def test_sighup_replaces_each_worker_once_its_successor_is_ready(supervised):
    supervisor = supervised()
    await ready(supervisor)
    old = [supervisor.started(slot)[0] for slot in (0, 1)]
    supervisor.proc.send_signal(signal.SIGHUP)
    await supervisor.wait_log("rolling restart done")
    new = [supervisor.started(slot)[-1] for slot in (0, 1)]
    text = supervisor.log()
    events = re.findall(
        r"worker (\d): pid (\d+) is ready; stopping pid (\d+)|worker (\d) \(pid (\d+)\) replaced",
        text,
    )
    # one worker at a time: slot 0 replaced (and gone) before slot 1's successor starts
    assert [tuple(filter(None, event)) for event in events] == [
        ("0", str(new[0]), str(old[0])),
        ("0", str(old[0])),
        ("1", str(new[1]), str(old[1])),
        ("1", str(old[1])),
    ]
    assert not any(alive(pid) for pid in old) and all(alive(pid) for pid in new)
    assert " ERROR " not in text
    assert supervisor.stop() == 0


async def test_a_successor_that_fails_stops_the_roll_and_the_old_workers_stay(supervised, tmp_path):
    supervisor = supervised()
    await ready(supervisor)
    old = [supervisor.started(slot)[0] for slot in (0, 1)]
    (tmp_path / "fail-at-boot").touch()
    supervisor.proc.send_signal(signal.SIGHUP)
    (line,) = await supervisor.wait_log("rolling restart stopped")
    failed = supervisor.started(0)[-1]
    assert line.endswith(
        f"ERROR squall.supervisor: rolling restart stopped: the new worker 0 (pid {failed}) "
        "exited with status 3 before it was ready; the old one keeps serving"
    )
    assert all(alive(pid) for pid in old)
    assert supervisor.stop() == 0


async def test_sigterm_stops_every_worker_cleanly(supervised):
    supervisor = supervised()
    await ready(supervisor)
    workers = [supervisor.started(slot)[0] for slot in (0, 1)]
    assert supervisor.stop() == 0
    assert not any(alive(pid) for pid in workers)
    assert " ERROR " not in supervisor.log()
