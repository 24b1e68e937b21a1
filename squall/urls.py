"""URLs as they may be shown: in ``status``, in a problem's text, in a log line.

A URL in the config may carry credentials (``redis://:password@host``); whatever displays or
logs one goes through :func:`redact_url`: ``status`` is public, and logs are shipped.
"""

from __future__ import annotations

import re

__all__ = ["redact_url"]

HIDDEN = "***"

#: Query parameters that hold a secret (redis-py takes ``?password=`` as well as the userinfo).
_SECRET_PARAM = re.compile(r"(?i)((?:^|&)[^=&]*(?:pass|secret|token|auth)[^=&]*=)[^&]*")
_HIDE_VALUE = r"\g<1>" + HIDDEN


def redact_url(url: str) -> str:
    """``url`` with its password, and the value of any password-like query parameter, as ``***``.

    Over-redacts rather than leaks: everything before the last ``@`` is treated as credentials,
    so a password holding ``/``, ``?`` or ``#`` (which it should have percent-encoded) is hidden
    too. The user name is kept (``redis://user:***@host``) unless there is no ``:`` to tell it
    from a bare password.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        return _SECRET_PARAM.sub(_HIDE_VALUE, url)
    userinfo, at, after = rest.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        rest = f"{user}:{HIDDEN}@{after}" if colon else f"{HIDDEN}@{after}"
    address, question, query = rest.partition("?")
    return f"{scheme}://{address}{question}{_SECRET_PARAM.sub(_HIDE_VALUE, query)}"
