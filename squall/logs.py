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
import logging
import re
import sys
import threading
import time
from collections import deque
from typing import IO, Any

from . import codec

__all__ = [
    "LOG_FORMATS",
    "BufferedStreamHandler",
    "JsonFormatter",
    "RecentErrors",
    "TextFormatter",
    "access_log",
    "configure_logging",
    "flush_logs",
    "log_request",
    "log_socket_close",
    "log_socket_open",
]

#: The values ``general.logFormat`` takes.
LOG_FORMATS = ("text", "json")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: One line per HTTP request and per socket opened or closed, at ``info``.
ACCESS = "squall.access"
access_log = logging.getLogger(ACCESS)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a traceback is a field, not more lines),
    encoded by :mod:`squall.codec` (orjson when installed); ``time`` is ISO 8601 in UTC."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        entry = self._entry(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            record.msg,
            record.args,
        )
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["traceback"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return codec.dumps(entry).decode()

    def access_line(self, created: float, template: str, args: tuple[Any, ...]) -> str:
        """An access line, without a ``LogRecord`` (see :func:`log_request`)."""
        entry = self._entry(created, "INFO", ACCESS, template % args, template, args)
        return codec.dumps(entry).decode()

    def _entry(
        self, created: float, level: str, name: str, message: str, template: Any, args: Any
    ) -> dict[str, Any]:
        second = int(created)
        if second != self._second:
            self._second = second
            self._stamp = datetime.datetime.fromtimestamp(second, datetime.UTC).strftime(
                "%Y-%m-%dT%H:%M:%S"
            )
        entry: dict[str, Any] = {
            "time": f"{self._stamp}.{int((created - second) * 1000):03d}+00:00",
            "level": level,
            "logger": name,
            "message": message,
        }
        fields = ACCESS_FIELDS.get(template) if name == ACCESS else None
        if fields is not None:
            event, names = fields
            entry["event"] = event
            entry.update(zip(names, args, strict=True))
            if "durationMs" in entry:  # rounded here, off the hot path; a socket's is in seconds
                scale = 1000 if event == "socketClose" else 1
                entry["durationMs"] = round(entry["durationMs"] * scale, 1)
        return entry


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger>: <message>``: the time formatted once a second, and a line
    without traceback built directly rather than through the format string."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._second = -1
        self._stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        stamp = self._time(record.created)
        return f"{stamp} {record.levelname} {record.name}: {record.getMessage()}"

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self._time(record.created)

    def access_line(self, created: float, template: str, args: tuple[Any, ...]) -> str:
        """An access line, without a ``LogRecord`` (see :func:`log_request`): one ``%`` of a
        line template made once per access template."""
        second = int(created)
        line = _TEXT_ACCESS.get(template)
        if line is None:
            line = _TEXT_ACCESS[template] = f"%s,%03d INFO {ACCESS}: {template}"
        return line % (self._stamp_of(second), int((created - second) * 1000), *args)

    def _time(self, created: float) -> str:
        second = int(created)
        return f"{self._stamp_of(second)},{int((created - second) * 1000):03d}"

    def _stamp_of(self, second: int) -> str:
        """``second`` formatted, once per second."""
        if second != self._second:
            self._second = second
            self._stamp = time.strftime(self.default_time_format, self.converter(second))
        return self._stamp


#: ``<time> INFO squall.access: <access template>``, by access template (see ``access_line``).
_TEXT_ACCESS: dict[str, str] = {}


class BufferedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A ``StreamHandler`` that does not make a system call per line below WARNING.

    A WARNING or worse is written out at once, with whatever waited before it; lesser lines
    (the access log) wait at most ``interval`` seconds in a buffer, written out by a thread of
    the handler. At ``info`` a busy server then writes tens of kilobytes per system call instead
    of one line each (``sys.stderr`` writes every line through when it is not a terminal). What
    a crash (SIGKILL) can lose: the last ``interval`` of info lines.

    A stream with a file descriptor (stderr) gets a 64 KiB buffer of its own over that
    descriptor (never closing it); any other stream (a ``StringIO``) is written to directly.
    """

    def __init__(self, stream: IO[str], interval: float = 0.5) -> None:
        super().__init__(stream)
        self._encoding = getattr(stream, "encoding", None) or "utf-8"
        self._binary: IO[bytes] | None
        try:
            descriptor = stream.fileno()
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
            self._binary = None
        else:
            stream.flush()
            self._binary = open(descriptor, "wb", buffering=65536, closefd=False)  # noqa: SIM115
        self._pending = False
        self._stopping = threading.Event()
        self._flusher = threading.Thread(
            target=self._flush_every, args=(interval,), name="squall-log-flush", daemon=True
        )
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
            if self._binary is not None:
                self._binary.write(line.encode(self._encoding, "backslashreplace"))
            else:
                self.stream.write(line)
            if record.levelno >= logging.WARNING:
                self._write_out()
            else:
                self._pending = True
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def write_access(self, template: str, args: tuple[Any, ...]) -> None:
        """Write an access line without a ``LogRecord`` (see :func:`log_request`)."""
        line = self.formatter.access_line(time.time(), template, args) + self.terminator  # type: ignore[union-attr]
        self.acquire()
        try:
            if self._binary is not None:
                self._binary.write(line.encode(self._encoding, "backslashreplace"))
            else:
                self.stream.write(line)
            self._pending = True
        finally:
            self.release()

    def flush(self) -> None:
        self.acquire()
        try:
            self._write_out()
        finally:
            self.release()

    def _write_out(self) -> None:
        """Write what waits (under the handler's lock)."""
        self._pending = False
        if self._binary is not None:
            self._binary.flush()
        self.stream.flush()

    def _flush_every(self, interval: float) -> None:
        while not self._stopping.wait(interval):
            if not self._pending:
                continue
            self.acquire()  # the lock emit() runs under: no line slips between the two
            try:
                self._write_out()
            except (OSError, ValueError):  # stderr closed or gone: the next emit reports it
                pass
            finally:
                self.release()

    def close(self) -> None:
        self._stopping.set()
        self.acquire()
        try:
            if self._binary is not None:
                self._binary.flush()
                self._binary.close()  # closefd=False: the descriptor stays open
                self._binary = None
        finally:
            self.release()
        super().close()


def configure_logging(level: str, fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Send every record at ``level`` or above to ``stream`` (stderr) in ``fmt``.

    Records are made without what no Squall line shows (the caller's file and line, thread and
    process names: the logging HOWTO's "Optimization" settings), formatted without the generic
    format-string machinery, and written without a system call per info line
    (:class:`BufferedStreamHandler`): together what keeps ``info`` cheap (bench/PROFILE.md).
    """
    logging._srcfile = None  # type: ignore[attr-defined]  # no stack walk per record
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = BufferedStreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO), handlers=[handler], force=True
    )


def flush_logs() -> None:
    """Write out what the handlers hold: before ``os._exit``, which skips logging's own."""
    for handler in logging.getLogger().handlers:
        handler.flush()


# -- the access log -------------------------------------------------------------------------------

_HTTP = "%s %s %d %.1f ms from %s"
_OPEN = "socket %s open from %s:%d"
_CLOSE = "socket %s closed %d after %.1f s from %s:%d"

#: The JSON fields of each access line, named after its arguments (no dict is built per line
#: at ``text``, and at ``json`` only once the line is written).
ACCESS_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    _HTTP: ("http", ("method", "path", "status", "durationMs", "remoteIP")),
    _OPEN: ("socketOpen", ("id", "remoteIP", "remotePort")),
    _CLOSE: ("socketClose", ("id", "code", "durationMs", "remoteIP", "remotePort")),
}


def log_request(method: str, path: str, status: int, seconds: float, remote_ip: str) -> None:
    """``GET /api/status 200 1.2 ms from 127.0.0.1`` (the path without its query string, which
    may carry secrets)."""
    if access_log.isEnabledFor(logging.INFO):
        _access(_HTTP, (method, path, status, seconds * 1000, remote_ip))


def log_socket_open(connection_id: str, remote_ip: str, remote_port: int) -> None:
    """``socket <id> open from 127.0.0.1:53422``."""
    if access_log.isEnabledFor(logging.INFO):
        _access(_OPEN, (connection_id, remote_ip, remote_port))


def log_socket_close(
    connection_id: str, remote_ip: str, remote_port: int, code: int, seconds: float
) -> None:
    """``socket <id> closed 1000 after 12.3 s from 127.0.0.1:53422`` (``durationMs`` in JSON)."""
    if access_log.isEnabledFor(logging.INFO):
        _access(_CLOSE, (connection_id, code, seconds, remote_ip, remote_port))


def _access(template: str, args: tuple[Any, ...]) -> None:
    """Log an access line; straight to Squall's own handler when nothing else would see it.

    A ``LogRecord`` and its trip through the logging machinery cost a few microseconds, most
    of what an access line costs, and a small HTTP action costs tens: when the only handler
    an access line would reach is the :class:`BufferedStreamHandler` of
    :func:`configure_logging` (no handler or filter of the application's own on the way),
    the line is formatted and written by that handler directly. Otherwise it is an ordinary
    record, so handlers an application adds see every line.
    """
    handler = _sole_handler()
    if handler is None:
        access_log.info(template, *args)
    else:
        handler.write_access(template, args)


def _sole_handler() -> BufferedStreamHandler | None:
    found = None
    logger: logging.Logger | None = access_log
    while logger is not None:
        if logger.filters:
            return None
        for handler in logger.handlers:
            if handler.level > logging.INFO:
                continue  # never sees an access line (the admin page's RecentErrors)
            if found is not None or not isinstance(handler, BufferedStreamHandler):
                return None
            if handler.filters or not hasattr(handler.formatter, "access_line"):
                return None
            found = handler
        logger = logger.parent if logger.propagate else None
    return found


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
