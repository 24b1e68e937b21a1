"""Every option of Squall, declared once: its type, the values it takes, its default, its doc.

:data:`SCHEMA` is the one place an option is defined. :func:`squall.config.load_config` checks
every config layer against it (:meth:`Option.check`), and ``config/default.yaml`` is written
from it (``scripts/default-yaml``; a unit test fails when the file and
the schema differ), so the defaults and the one-line comments a user reads are these ones.

A :class:`Section` is a map of further options (``servers.web``); an :class:`Option` is a value.
An option whose default is ``null``, or that is ``nullable``, also takes ``null`` ("no limit",
"off", "derive it": its doc says which). An ``open`` map's keys are the user's own
(``app``, ``servers.web.httpHeaders``): its contents are not checked against the schema.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from .errors import DEFAULT_TEMPLATES, TYPE_NAMES, ConfigError, InvalidRoomOptions, kind_of
from .logs import LOG_FORMATS
from .room_options import HISTORY_MAX_SIZE, HISTORY_MIN_TTL, parse_room_options

__all__ = [
    "ENTRIES",
    "SCHEMA",
    "Check",
    "Option",
    "Section",
    "check_together",
    "children",
    "defaults",
    "kind_of",
    "render_default_yaml",
]


@dataclass(frozen=True)
class Check:
    """A rule a string (or an open map's key) must follow beyond its type, and the words that
    say what is expected when it does not."""

    test: Callable[[Any], bool]
    expected: str


@dataclass(frozen=True)
class Section:
    """A map of options, such as ``servers.web``: only the keys the schema declares."""

    key: str
    doc: str = ""


@dataclass(frozen=True)
class Option:
    """One option: where it lives, what it takes, its default and what it does.

    Attributes:
        key: the dotted path, e.g. ``"servers.web.port"``.
        type: the type of its values, or a tuple of types (``int`` never takes a bool;
            ``float`` takes an int too).
        default: the value when no layer sets it.
        doc: one line, shown after the option in ``config/default.yaml``.
        nullable: ``null`` is accepted (always so when the default is ``null``).
        low, high: inclusive bounds of a number (durations are milliseconds).
        choices: the only strings accepted; ``any_case`` compares them case-insensitively.
        check: a rule a string value must pass (a path, a non-empty token...).
        items: the type every item of a list must have.
        open: a map whose keys are the user's own; ``keys`` checks them.
        values: a rule every value of an open map must pass: it returns None, or the key
            inside that value that is wrong (``""`` for the value itself) and why.
    """

    key: str
    type: type | tuple[type, ...]
    default: Any
    doc: str
    nullable: bool = False
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    any_case: bool = False
    check: Check | None = None
    items: type | None = None
    open: bool = False
    keys: Check | None = None
    values: Callable[[Any], tuple[str, str] | None] | None = None

    @property
    def types(self) -> tuple[type, ...]:
        return self.type if isinstance(self.type, tuple) else (self.type,)

    @property
    def takes_null(self) -> bool:
        return self.nullable or self.default is None

    def check_value(self, value: Any, source: str) -> None:
        """Refuse ``value`` unless this option takes it.

        Raises:
            ConfigError: naming ``source``, the key (with ``[index]`` for a list item) and
                what was expected.
        """
        if value is None and self.takes_null:
            return
        if value is None or not any(_same_type(value, t) for t in self.types):
            want = " or ".join(TYPE_NAMES.get(t, t.__name__) for t in self.types)
            if self.takes_null:
                want += " or null"
            raise ConfigError(source, self.key, f"expected {want}, got {kind_of(value)}")
        if isinstance(value, list) and self.items is not None:
            for index, item in enumerate(value):
                if not _same_type(item, self.items):
                    want = TYPE_NAMES.get(self.items, self.items.__name__)
                    key = f"{self.key}[{index}]"
                    raise ConfigError(source, key, f"expected {want}, got {kind_of(item)}")
        if isinstance(value, dict) and self.keys is not None:
            for name in value:
                if not self.keys.test(name):
                    raise ConfigError(
                        source, self.key, f"{self.keys.expected}, got {kind_of(name)}"
                    )
        if isinstance(value, dict) and self.values is not None:
            for name, item in value.items():
                problem = self.values(item)
                if problem is not None:
                    inner, why = problem
                    key = ".".join(part for part in (self.key, str(name), inner) if part)
                    raise ConfigError(source, key, why)
        if self.low is not None and isinstance(value, (int, float)) and not self._in_range(value):
            want = f"from {self.low} to {self.high}" if self.high is not None else ""
            want = want or f"at least {self.low}"
            raise ConfigError(source, self.key, f"expected a number {want}, got {value!r}")
        if isinstance(value, str):
            self._check_text(value, source)

    def _in_range(self, value: float) -> bool:
        assert self.low is not None
        return self.low <= value and (self.high is None or value <= self.high)

    def _check_text(self, value: str, source: str) -> None:
        if self.choices:
            fold = str.lower if self.any_case else str
            if fold(value) not in {fold(choice) for choice in self.choices}:
                raise ConfigError(
                    source, self.key, f"expected {_one_of(self.choices)}, got {value!r}"
                )
        if self.check is not None and not self.check.test(value):
            raise ConfigError(source, self.key, f"expected {self.check.expected}, got {value!r}")


def _same_type(value: Any, expected: type) -> bool:
    if expected is bool or isinstance(value, bool):
        return expected is bool and isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float))
    return isinstance(value, expected)


def _one_of(choices: tuple[str, ...]) -> str:
    if len(choices) == 2:
        return f'"{choices[0]}" or "{choices[1]}"'
    return "one of " + ", ".join(choices)


def _path(example: str, trailing_slash: bool = True) -> Check:
    """A URL path of the server's own, such as ``/metrics``."""
    if trailing_slash:
        return Check(
            lambda v: v.startswith("/") and len(v) > 1,
            f'a path starting with "/", like "{example}"',
        )
    return Check(
        lambda v: v.startswith("/") and len(v) > 1 and not v.endswith("/"),
        f'a path starting with "/" and not ending with one, like "{example}"',
    )


#: RFC 6265 cookie names are RFC 7230 tokens: anything else would break the Set-Cookie header.
_COOKIE_NAME = Check(
    lambda v: re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", v) is not None,
    "a cookie name (letters, digits and !#$%&'*+-.^_`|~)",
)


def _room_options_problem(options: Any) -> tuple[str, str] | None:
    """What is wrong with a room's options in ``startingChatRooms``: (key, why), or None."""
    try:
        parse_room_options(options)
    except InvalidRoomOptions as exc:
        return exc.option, exc.why
    return None


_ERROR_DOCS = {"internalError": "an unexpected exception, when exposeErrors is false"}


SCHEMA: tuple[Section | Option, ...] = (
    Section("general"),
    Option("general.serverName", str, "squall", "shown in serverInformation and the status action"),
    Option("general.id", str, None, 'this server\'s id; null derives "<hostname>-<pid>"'),
    Option("general.apiVersion", str, "1.0.0", "the application's version, reported by status"),
    Option(
        "general.welcomeMessage",
        str,
        "Hello! Welcome to the Squall api",
        "pushed to every new socket (context: api)",
    ),
    Option(
        "general.logLevel",
        str,
        "info",
        "debug, info, warning, error or critical; info adds one access line per request and socket",
        choices=("debug", "info", "warning", "error", "critical"),
        any_case=True,
    ),
    Option(
        "general.logFormat",
        str,
        "text",
        "text, or json: one JSON object per line, for log shippers",
        choices=LOG_FORMATS,
    ),
    Option(
        "general.exposeErrors",
        bool,
        True,
        'show unexpected exceptions\' text to clients; false: "internal error (ref <id>)"',
    ),
    Option(
        "general.simultaneousActions",
        int,
        5,
        'actions in flight per connection before "too many pending"',
        low=1,
    ),
    Option(
        "general.simultaneousRequests",
        int,
        200,
        'verbs of any kind (actions included) in flight per socket before "too many pending"',
        low=1,
    ),
    Option(
        "general.actionTimeout",
        int,
        30000,
        "an action still running after this gets an error reply (a plain def's thread runs on); "
        "null: no limit",
        nullable=True,
        low=1,
    ),
    Option(
        "general.actionThreads",
        int,
        32,
        "threads running plain-def actions; past them, calls wait for a free one",
        low=1,
    ),
    Option(
        "general.shutdownTimeout",
        int,
        10000,
        "how long shutdown waits for in-flight actions",
        low=0,
    ),
    Option(
        "general.blockedLoopWarning",
        int,
        1000,
        "warn, naming the action, when the loop stalls this long; null disables",
        nullable=True,
        low=10,
    ),
    Option(
        "general.maxRoomNameLength",
        int,
        128,
        'longest room name, in characters; longer ones are "invalid room name"',
        low=1,
    ),
    Option(
        "general.maxRooms",
        int,
        10000,
        "rooms that may exist at once (cluster-wide); null: no bound",
        nullable=True,
        low=1,
    ),
    Option(
        "general.emptyRoomTtl",
        int,
        600000,
        "a room created by createChatRoom is destroyed after staying empty this long; null "
        "keeps it",
        nullable=True,
        low=100,
    ),
    Option(
        "general.sessionTtl",
        int,
        86400000,
        "a session (connection.session, one per fingerprint) is kept this long after its last use",
        low=1000,
    ),
    Option(
        "general.sessionMaxBytes",
        int,
        65536,
        "largest session, as JSON; a bigger one fails the action that grew it",
        low=2,
    ),
    Option(
        "general.startingChatRooms",
        dict,
        {"defaultRoom": {}},
        "rooms created at boot, name: options ({presence, history}, as roomDefaults); never "
        "destroyed for being empty",
        open=True,
        keys=Check(
            lambda name: isinstance(name, str) and bool(name),
            "room names must be non-empty strings",
        ),
        values=_room_options_problem,
    ),
    Section(
        "general.roomDefaults",
        "the options of a room whose creator leaves them out (startingChatRooms, rooms.add, "
        "createChatRoom)",
    ),
    Option(
        "general.roomDefaults.presence",
        bool,
        False,
        "members are pushed every join and leave (context: presence)",
    ),
    Section("general.roomDefaults.history"),
    Option(
        "general.roomDefaults.history.size",
        int,
        0,
        "the last messages kept per room, numbered (offset, epoch) for recovery; 0: no history",
        low=0,
        high=HISTORY_MAX_SIZE,
    ),
    Option(
        "general.roomDefaults.history.ttl",
        int,
        600000,
        "how long a kept message stays",
        low=HISTORY_MIN_TTL,
    ),
    Section("general.paths"),
    Option(
        "general.paths.actions",
        list,
        ["actions"],
        "folders whose *.py files declare actions and middleware (files starting with _ are "
        "skipped)",
        items=str,
    ),
    Option(
        "general.paths.initializers",
        list,
        ["initializers"],
        "more drop-in folders, for initializers; used when present",
        items=str,
    ),
    Option("general.paths.public", str, "public", "the static site, also read by the file verb"),
    Section("servers"),
    Section("servers.web"),
    Option(
        "servers.web.enabled",
        bool,
        True,
        "serve HTTP actions and files; false leaves the port to the socket, probes, metrics, admin",
    ),
    Option("servers.web.bindIP", str, "0.0.0.0", "address to listen on (--host)"),
    Option("servers.web.port", int, 8080, "overridden by PORT and --port", low=0, high=65535),
    Option("servers.web.urlPathForActions", str, "api", "actions answer at /<this>/<action>"),
    Option("servers.web.urlPathForFiles", str, "public", "static files answer at /<this>/<path>"),
    Option(
        "servers.web.rootEndpointType",
        str,
        "file",
        '"file": / and other paths serve public/; "api": they 404',
        choices=("file", "api"),
    ),
    Option("servers.web.directoryFileType", str, "index.html", "the file served for a directory"),
    Option(
        "servers.web.trustProxy", bool, False, "honour X-Forwarded-For / X-Real-IP for remoteIP"
    ),
    Option(
        "servers.web.flatFileCacheDuration",
        int,
        60000,
        "Cache-Control max-age of static files",
        low=0,
    ),
    Option(
        "servers.web.maxBodySize",
        int,
        10485760,
        "largest accepted HTTP request body, in bytes",
        low=1,
    ),
    Option(
        "servers.web.idleConnectionTimeout",
        int,
        60000,
        "close HTTP connections idle (or slow to send headers) this long",
        low=1,
    ),
    Option(
        "servers.web.maxHeaderSize", int, 65536, "largest accepted request head, in bytes", low=1024
    ),
    Option(
        "servers.web.healthPath",
        str,
        "/health",
        "GET: 200 while the process serves (liveness)",
        check=_path("/health"),
    ),
    Option(
        "servers.web.readyPath",
        str,
        "/ready",
        "GET: 200 when it should get clients, else 503 and the reason (readiness)",
        check=_path("/ready"),
    ),
    Option("servers.web.secure", bool, False, "serve HTTPS/WSS with certFile and keyFile"),
    Option("servers.web.certFile", str, None, "path to the PEM certificate chain, when secure"),
    Option("servers.web.keyFile", str, None, "path to the PEM private key, when secure"),
    Option(
        "servers.web.httpHeaders",
        dict,
        {
            "X-Powered-By": "squall",
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Allow-Methods": "HEAD, GET, POST, PUT, DELETE, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type",
        },
        "added to every HTTP response (CORS lives here)",
        open=True,
    ),
    Section("servers.web.fingerprint"),
    Option(
        "servers.web.fingerprint.cookieKey",
        str,
        "sessionID",
        "cookie that links a browser's requests and its socket",
        check=_COOKIE_NAME,
    ),
    Option(
        "servers.web.fingerprint.httpOnly", bool, True, "cookie flag: not readable by page scripts"
    ),
    Option(
        "servers.web.fingerprint.sameSite",
        str,
        "Lax",
        "cookie flag: Strict, Lax or None",
        choices=("Strict", "Lax", "None"),
    ),
    Option(
        "servers.web.fingerprint.maxAge",
        int,
        None,
        "cookie lifetime; null makes a session cookie",
    ),
    Section("servers.web.metrics"),
    Option(
        "servers.web.metrics.enabled",
        bool,
        False,
        "serve Prometheus metrics (needs the \"metrics\" extra: pip install 'squall[metrics]')",
    ),
    Option(
        "servers.web.metrics.path",
        str,
        "/metrics",
        "where Prometheus scrapes",
        check=_path("/metrics"),
    ),
    Option(
        "servers.web.metrics.token",
        str,
        None,
        'when set, a scrape must send "Authorization: Bearer <token>" (else 401)',
        check=Check(bool, "a non-empty string, or null for no token"),
    ),
    Section("servers.web.admin"),
    Option(
        "servers.web.admin.path",
        str,
        "/admin",
        "the live admin page (charts, rooms, last errors)",
        check=_path("/admin", trailing_slash=False),
    ),
    Option(
        "servers.web.admin.token",
        str,
        None,
        "the page is served only when this is set, to whoever presents it",
        check=Check(bool, "a non-empty string, or null to turn the page off"),
    ),
    Section("servers.websocket"),
    Option("servers.websocket.enabled", bool, True, "serve the WebSocket endpoint"),
    Option(
        "servers.websocket.clientUrl",
        str,
        "window.location.origin",
        "where the generated client connects (a URL or this expression)",
    ),
    Option(
        "servers.websocket.clientJsPath",
        str,
        "javascript/",
        "folder under public/ for the generated client",
    ),
    Option(
        "servers.websocket.clientJsName",
        str,
        "actionheroClient",
        "file name without extension; null renders no client",
        nullable=True,
    ),
    Option(
        "servers.websocket.destroyClientsOnShutdown",
        bool,
        False,
        "true: shutdown runs destroy (4000, no reconnect) instead of 1001",
    ),
    Section("servers.websocket.server"),
    Option(
        "servers.websocket.server.pathname",
        str,
        "/primus",
        "the WebSocket endpoint",
        check=_path("/primus"),
    ),
    Option(
        "servers.websocket.server.authorization",
        str,
        None,
        "dotted path of fn(request) -> truthy to admit the upgrade",
    ),
    Option(
        "servers.websocket.server.origins",
        (str, list),
        None,
        "allowed Origin values (a list), \"*\" for any; null: only the page's own host (Origin's "
        "host = Host)",
        items=str,
        check=Check(lambda v: v == "*", 'a list of origins, "*" or null (the page\'s own host)'),
    ),
    Option(
        "servers.websocket.server.timeout",
        int,
        35000,
        "close a peer silent (no frame, no pong) this long; more than pingInterval",
        low=1,
    ),
    Option(
        "servers.websocket.server.pingInterval",
        int,
        25000,
        "protocol-level ping to every peer this often",
        low=1,
    ),
    Option(
        "servers.websocket.server.maxMessageSize",
        int,
        1048576,
        "larger inbound frames close the socket with 1009",
        low=1,
    ),
    Option(
        "servers.websocket.server.maxBufferedBytes",
        int,
        4194304,
        "outbound bytes queued for a slow reader before closing it with 1008",
        low=1,
    ),
    Option(
        "servers.websocket.server.maxConnections",
        int,
        None,
        "further upgrades get 503; null means no cap (production: 10000)",
        low=0,
    ),
    Option(
        "servers.websocket.server.maxConnectionsPerAddress",
        int,
        None,
        "sockets per client address (remoteIP) before 503; null means no cap (production: 100)",
        low=1,
    ),
    Option(
        "servers.websocket.server.rateLimit",
        (int, float),
        None,
        "inbound frames per second per connection (token bucket); null is off (production: 50)",
        low=0.001,
    ),
    Option(
        "servers.websocket.server.rateBurst",
        int,
        100,
        "token bucket size, when rateLimit is set",
        low=1,
    ),
    Option("servers.websocket.server.compression", bool, False, "negotiate permessage-deflate"),
    Section("servers.websocket.client"),
    Option(
        "servers.websocket.client.apiPath",
        str,
        "/api",
        "HTTP base the client uses for action() while not connected",
    ),
    Option("servers.websocket.client.timeout", int, 10000, "bound on each connect attempt", low=0),
    Option("servers.websocket.client.ping", int, 25000, "client heartbeat interval", low=1),
    Option(
        "servers.websocket.client.pong",
        int,
        10000,
        "no pong within this means the link is dead",
        low=1,
    ),
    Option(
        "servers.websocket.client.queueSize",
        int,
        100,
        "verbs held while reconnecting; null: no bound",
        nullable=True,
        low=0,
    ),
    Section("servers.websocket.client.reconnect"),
    Option("servers.websocket.client.reconnect.min", int, 500, "first backoff", low=1),
    Option("servers.websocket.client.reconnect.max", int, 30000, "backoff ceiling", low=1),
    Option(
        "servers.websocket.client.reconnect.retries",
        int,
        None,
        "attempts before giving up; null retries forever",
        low=0,
    ),
    Section("redis"),
    Option(
        "redis.enabled",
        bool,
        False,
        "share rooms and pushes with other servers (SQUALL_REDIS_URL enables too)",
    ),
    Option(
        "redis.url",
        str,
        "redis://127.0.0.1:6379/0",
        "where the Redis server is (SQUALL_REDIS_URL)",
        check=Check(
            lambda v: v.startswith(("redis://", "rediss://", "unix://")),
            "a redis://, rediss:// or unix:// URL",
        ),
    ),
    Option(
        "redis.clusterName",
        str,
        "squall",
        "cluster token: servers on one Redis with other names ignore each other",
    ),
    Option(
        "redis.leaseTimeout",
        int,
        15000,
        "a dead server's members leave every room within this",
        low=100,
    ),
    Option(
        "redis.canaryInterval",
        int,
        5000,
        "how often each server checks it still hears its own messages",
        low=100,
    ),
    Option(
        "redis.outboxSize",
        int,
        1000,
        "messages for other servers kept while Redis is away; past it say answers an error",
        low=0,
    ),
    Option("redis.outboxBytes", int, 16777216, "the same bound in bytes (16 MiB)", low=0),
    Section("errors", "the texts clients see; {placeholders} are filled in"),
    *(
        Option(f"errors.{name}", str, text, _ERROR_DOCS.get(name, ""))
        for name, text in DEFAULT_TEMPLATES.items()
    ),
    Option("app", dict, {}, "your application's own options, free-form", open=True),
)


def check_together(config: dict[str, Any]) -> None:
    """The rules between options, checked once every layer is merged.

    Raises:
        ConfigError: naming the option to change, with source ``config`` (the merged layers).
    """
    web, websocket = config["servers"]["web"], config["servers"]["websocket"]
    if not (
        web["enabled"] or websocket["enabled"] or web["metrics"]["enabled"] or web["admin"]["token"]
    ):
        # servers.web.enabled: false leaves the port to the socket, metrics and admin pages
        why = (
            "false, with servers.websocket.enabled false and neither metrics nor the admin page "
            "on, leaves the server nothing to serve"
        )
        raise ConfigError("config", "servers.web.enabled", why)
    server = websocket["server"]
    if server["timeout"] <= server["pingInterval"]:
        # silence is what closes a peer: one that answers every ping is silent pingInterval long
        why = (
            f"expected more than pingInterval ({server['pingInterval']}), got "
            f"{server['timeout']}: a peer that answers every ping would be closed"
        )
        raise ConfigError("config", "servers.websocket.server.timeout", why)


#: The entries of :data:`SCHEMA` by dotted key.
ENTRIES: dict[str, Section | Option] = {entry.key: entry for entry in SCHEMA}


def children(prefix: str) -> list[str]:
    """The names directly under the section ``prefix`` ("" for the top), in schema order."""
    depth = prefix.count(".") + 1 if prefix else 0
    start = f"{prefix}." if prefix else ""
    return [
        entry.key.split(".")[depth]
        for entry in SCHEMA
        if entry.key.startswith(start) and entry.key.count(".") == depth
    ]


def defaults() -> dict[str, Any]:
    """Every option's default, as the nested dict a config holds."""
    tree: dict[str, Any] = {}
    for entry in SCHEMA:
        *parents, name = entry.key.split(".")
        node = tree
        for part in parents:
            node = node[part]
        node[name] = {} if isinstance(entry, Section) else copy.deepcopy(entry.default)
    return tree


# -- config/default.yaml ------------------------------------------------------------------------

_HEADER = """\
# Squall's every option, with its default. Written from squall/schema.py, the source: edit it,
# then run scripts/default-yaml. config/<env>.yaml is deep-merged over this file (maps merge key
# by key; lists and scalars replace), then each --config file, the PORT and SQUALL_REDIS_URL
# environment variables and the --port and --host flags. All durations are milliseconds; a null
# limit means "no limit"."""

#: The column where the comments of config/default.yaml start.
_COMMENT_COLUMN = 42


def render_default_yaml() -> str:
    """``config/default.yaml``: every entry of :data:`SCHEMA`, its default and its doc."""
    lines = [_HEADER]
    depth_before = 0
    for entry in SCHEMA:
        depth = entry.key.count(".")
        if depth == 0 or (isinstance(entry, Section) and depth_before > depth + 1):
            lines.append("")
        depth_before = depth
        indent = "  " * depth
        name = entry.key.rsplit(".", 1)[-1]
        if isinstance(entry, Section):
            lines.append(_commented(f"{indent}{name}:", entry.doc))
        elif entry.open and entry.default:
            lines.append(_commented(f"{indent}{name}:", entry.doc))
            for key, value in entry.default.items():
                lines.append(f"{indent}  {_scalar(key)}: {_scalar(value)}")
        else:
            lines.append(_commented(f"{indent}{name}: {_scalar(entry.default)}", entry.doc))
    return "\n".join(lines) + "\n"


def _commented(line: str, doc: str) -> str:
    if not doc:
        return line
    return f"{line.ljust(_COMMENT_COLUMN - 2)}  # {doc}"


def _scalar(value: Any) -> str:
    """One value in YAML's flow style, on one line; a string in double quotes where YAML needs
    quotes, or where it starts with a digit (``"1.0.0"`` must not be edited into a number)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=sys.maxsize, allow_unicode=True)
    text = text.removesuffix("\n").removesuffix("\n...").strip()
    if isinstance(value, str) and (text.startswith("'") or value[:1].isdigit()):
        return json.dumps(value, ensure_ascii=False)
    return text
