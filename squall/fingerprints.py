"""Fingerprints: the id that links a browser's HTTP requests and its sockets (PROTOCOL.md §4).

A fingerprint comes from the client (the ``sessionID`` cookie, else the ``?sessionID=`` query
value of an upgrade) or is made here. What a client sends ends up in a ``Set-Cookie`` header, in
log lines and in session keys, so only a short token of ``[A-Za-z0-9_-]`` is ever taken: anything
else (a CR/LF, a ``;`` that would add cookie attributes, characters outside Latin-1) is ignored
as if it were absent, never echoed. A made fingerprint is random and never the connection id,
which every room member sees as ``from``: replaying it must not take a session over.
"""

from __future__ import annotations

import re
import secrets

__all__ = ["MAX_LENGTH", "choose", "new_fingerprint", "valid_fingerprint"]

#: The longest fingerprint taken from a client (PROTOCOL.md §4).
MAX_LENGTH = 128

_TOKEN = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_LENGTH}}}")


def valid_fingerprint(candidate: object) -> str | None:
    """``candidate`` when it is a fingerprint a client may send, else None."""
    if isinstance(candidate, str) and _TOKEN.fullmatch(candidate):
        return candidate
    return None


def new_fingerprint() -> str:
    """A new random fingerprint: 32 url-safe characters (192 bits), unguessable."""
    return secrets.token_urlsafe(24)


def choose(cookie: object, query: object = None) -> tuple[str, bool]:
    """The fingerprint of a request: its valid cookie, else its valid query value (upgrades
    only), else a new one.

    Returns the fingerprint and whether the response must set the cookie (the request had no
    valid one), so that the browser's next requests carry the same fingerprint.
    """
    found = valid_fingerprint(cookie)
    if found is not None:
        return found, False
    return valid_fingerprint(query) or new_fingerprint(), True
