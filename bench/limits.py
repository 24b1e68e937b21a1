"""Hard bounds every load loop obeys, and the loopback-only rule.

The generator can open tens of thousands of sockets and send as fast as a server answers; these
caps keep a typo from turning it into something that hurts the machine or anyone else's, so the
caps are enforced where the work is created, not only in argument parsing.
"""

from __future__ import annotations

import ipaddress

MAX_CONNECTIONS = 20_000  # across all generator processes; ulimit -n is 20 000 here
MAX_PROCS = 8
MAX_DURATION_S = 120.0  # one timed phase (rpc, http, idle hold)
MAX_MESSAGES = 100_000  # says per fan-out run
MAX_WINDOW = 64  # un-acked says in flight
MAX_WALL_S = 600.0  # hard cap on one scenario run, setup included
CONNECT_TIMEOUT_S = 10.0


def require_loopback(host: str) -> str:
    """Return ``host`` as an IPv4 literal if it is in 127.0.0.0/8, else raise ``ValueError``.

    Only literals (and ``localhost``) are accepted so that no resolver can redirect the load.
    """
    literal = "127.0.0.1" if host == "localhost" else host
    try:
        addr = ipaddress.ip_address(literal)
    except ValueError:
        raise ValueError(f"target must be a 127.0.0.0/8 address, got {host!r}") from None
    if addr.version != 4 or addr not in ipaddress.ip_network("127.0.0.0/8"):
        raise ValueError(f"target must be a 127.0.0.0/8 address, got {host!r}")
    return literal


def clamp(value: float, low: float, high: float) -> float:
    """Bound ``value`` to [low, high]; used for every user-supplied count and duration."""
    return max(low, min(high, value))
