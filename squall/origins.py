"""Which pages may open a WebSocket: the ``Origin`` check of the upgrade (PROTOCOL.md §6).

A browser sends the page's origin with every upgrade, and cookies with it: a page of another
site that opens a socket to Squall rides on the user's session (cross-site WebSocket
hijacking). So, as Tornado's ``check_origin``, the default admits only pages of the host that
serves the socket; other sites must be listed, and ``"*"`` admits all only where it is written.
Clients that are not browsers send no ``Origin`` and are not checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

__all__ = ["origin_allowed"]


def origin_allowed(origin: str, host: str | None, allowed: str | Sequence[str] | None) -> bool:
    """Whether an upgrade from a page of ``origin`` may connect.

    Args:
        origin: the request's ``Origin`` header (``https://chat.example.com``).
        host: the request's ``Host`` header (``chat.example.com``), or None.
        allowed: ``servers.websocket.server.origins``: ``"*"`` for any origin, a list of the
            allowed ``Origin`` values, or None for the page's own host only (the host and port
            of ``origin`` equal ``host``; ``Origin: null`` is never its own host).
    """
    if allowed == "*":
        return True
    if allowed is None:
        try:
            netloc = urlsplit(origin).netloc
        except ValueError:  # not a URL at all
            return False
        return bool(netloc) and host is not None and netloc.lower() == host.strip().lower()
    return origin in allowed
