"""``python supervised.py DIR N``: squall.supervisor running N stand-in workers, steered by files
in DIR, so that test_supervisor.py can make workers fail at will without booting servers.

Each worker touches ``DIR/started-<slot>-<pid>``, then:
- exits with status 3 before it is ready when ``DIR/fail-at-boot`` exists;
- else reports ready, and exits with status 4 at once when ``DIR/crash`` exists;
- else serves until SIGTERM, and exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from squall.supervisor import supervise


def main() -> int:
    workdir, count = Path(sys.argv[1]), int(sys.argv[2])
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    def run_worker(slot: int, ready: Callable[[], None]) -> int:
        stop: list[int] = []
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
        (workdir / f"started-{slot}-{os.getpid()}").touch()
        if (workdir / "fail-at-boot").exists():
            return 3
        ready()
        if (workdir / "crash").exists():
            return 4
        while not stop:
            signal.pause()
        return 0

    return supervise(count, run_worker, stop_timeout=5.0)


if __name__ == "__main__":
    sys.exit(main())
