"""Log lines an operator can use: the access log, a JSON format for log shippers, and the last
errors kept for the admin page.

- ``general.logFormat: text`` (default) writes ``<time> <LEVEL> <logger>: <message>``;
  ``json`` writes one JSON object per line: ``time``, ``level``, ``logger``, ``message``, the
  structured fields of the record (an access line's ``method``, ``status``...) and, for an
  exception, ``traceback``.
- At ``info``, the ``squall.access`` logger writes one line per HTTP request
  (:func:`log_request`) and one per socket opened and closed (:func:`log_socket_open`,
  :func:`log_socket_close`). Each checks the level first: below ``info`` a request costs one
  attribute lookup.
- :class:`RecentErrors` keeps the last ERROR records (with the ``ref`` of an
  ``internal error (ref <id>)`` reply, when the line carries one) and counts them.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import sys
from collections import deque
from typing import IO, Any

__all__ = [
    "LOG_FORMATS",
    "JsonFormatter",
    "RecentErrors",
    "access_log",
    "configure_logging",
    "log_request",
    "log_socket_close",
    "log_socket_open",
]

#: The values ``general.logFormat`` takes.
LOG_FORMATS = ("text", "json")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: One line per HTTP request and per socket opened or closed, at ``info``.
access_log = logging.getLogger("squall.access")

#: The attribute of a record holding its structured fields (``extra={"fields": {...}}``).
FIELDS = "fields"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a traceback is a field, not more lines)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, FIELDS, None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["traceback"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str, fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Send every record at ``level`` or above to ``stream`` (stderr) in ``fmt``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO), handlers=[handler], force=True
    )


# -- the access log -------------------------------------------------------------------------------


def log_request(method: str, path: str, status: int, seconds: float, remote_ip: str) -> None:
    """``GET /api/status 200 1.2 ms from 127.0.0.1`` (the path without its query string, which
    may carry secrets)."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    ms = round(seconds * 1000, 1)
    access_log.info(
        "%s %s %d %.1f ms from %s",
        method,
        path,
        status,
        ms,
        remote_ip,
        extra={
            FIELDS: {
                "event": "http",
                "method": method,
                "path": path,
                "status": status,
                "durationMs": ms,
                "remoteIP": remote_ip,
            }
        },
    )


def log_socket_open(connection_id: str, remote_ip: str, remote_port: int) -> None:
    """``socket <id> open from 127.0.0.1:53422``."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    access_log.info(
        "socket %s open from %s:%d",
        connection_id,
        remote_ip,
        remote_port,
        extra={
            FIELDS: {
                "event": "socketOpen",
                "id": connection_id,
                "remoteIP": remote_ip,
                "remotePort": remote_port,
            }
        },
    )


def log_socket_close(
    connection_id: str, remote_ip: str, remote_port: int, code: int, seconds: float
) -> None:
    """``socket <id> closed 1000 after 12.3 s from 127.0.0.1:53422``."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    access_log.info(
        "socket %s closed %d after %.1f s from %s:%d",
        connection_id,
        code,
        seconds,
        remote_ip,
        remote_port,
        extra={
            FIELDS: {
                "event": "socketClose",
                "id": connection_id,
                "remoteIP": remote_ip,
                "remotePort": remote_port,
                "code": code,
                "durationMs": round(seconds * 1000, 1),
            }
        },
    )


# -- the last errors, for the admin page ----------------------------------------------------------

#: ``internal error (ref <id>)``: the reference a client was given for this logged error.
_REF = re.compile(r"\bref[ =:]+([A-Za-z0-9_-]+)")


class RecentErrors(logging.Handler):
    """Keeps the last ``size`` ERROR records (any logger) and counts every one.

    Records come from any thread (plain-function actions run in a pool): the handler's own lock
    (held by ``logging`` around :meth:`emit`) guards the ring. ``errors()`` returns plain dicts
    the admin page shows: ``time`` (epoch seconds), ``logger``, ``message`` (first line),
    ``ref`` (or None) and, with a traceback, ``exception``.
    """

    def __init__(self, size: int = 20) -> None:
        super().__init__(level=logging.ERROR)
        self.count = 0
        self._ring: deque[dict[str, Any]] = deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string still counts as an error
            message = str(record.msg)
        ref = getattr(record, "ref", None)
        if ref is None:
            found = _REF.search(message)
            ref = found.group(1) if found else None
        entry = {
            "time": record.created,
            "level": record.levelname,
            "logger": record.name,
            "message": message.splitlines()[0] if message else "",
            "ref": ref,
        }
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            entry["exception"] = f"{type(error).__name__}: {error}"[:500]
        self.count += 1
        self._ring.append(entry)

    def errors(self) -> list[dict[str, Any]]:
        self.acquire()
        try:
            return list(self._ring)
        finally:
            self.release()

    def install(self) -> None:
        logging.getLogger().addHandler(self)

    def uninstall(self) -> None:
        logging.getLogger().removeHandler(self)
