#!/usr/bin/env python3
"""Run a Squall server: ``python server.py [--host A] [--port N] [--env NAME] [--config FILE]
[--workers N] [--loop L]``; start a file: ``python server.py generate action|middleware|initializer
NAME``.

The composition root: load the config, build the core (:class:`squall.Squall`) and the handlers'
options (:class:`handlers.base.HandlerOptions`) once, route actions to their lean path and
everything else to one Tornado application, on one port; run until SIGINT or SIGTERM, then stop
cleanly (PROTOCOL.md §6) and exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import ssl
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tornado.netutil
import tornado.web

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from handlers.admin import AdminSocketAuthorizer, admin_routes  # noqa: E402
from handlers.api import ApiServer  # noqa: E402
from handlers.base import HandlerOptions, ResponseHeaders, request_fingerprint  # noqa: E402
from handlers.health import health_routes  # noqa: E402
from handlers.http11 import HTTPServer, ServerParams  # noqa: E402
from handlers.metrics import MetricsHandler  # noqa: E402
from handlers.routing import ServerRouter  # noqa: E402
from handlers.static import StaticHandler  # noqa: E402
from handlers.websocket import CLOSE_GOING_AWAY, SocketEndpoint, SocketRegistry  # noqa: E402
from squall import Squall, SquallError, generate, load_config  # noqa: E402
from squall.admin import AdminAuth  # noqa: E402
from squall.config import Config  # noqa: E402
from squall.loader import load_callable  # noqa: E402
from squall.logs import configure_logging, flush_logs, log_request  # noqa: E402
from squall.supervisor import supervise  # noqa: E402

log = logging.getLogger("squall.server")

#: What a worker may take to stop beyond general.shutdownTimeout (closing sockets, leaving
#: Redis) before the supervisor kills it.
STOP_MARGIN = 10.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="server.py",
        description="Serve the actions of actions/, the files of public/ and the WebSocket "
        "on one port.",
    )
    parser.add_argument(
        "--port", type=int, help="port to listen on (default: servers.web.port, or $PORT)"
    )
    parser.add_argument(
        "--host",
        metavar="ADDRESS",
        help="address to listen on, e.g. 127.0.0.1 (default: servers.web.bindIP)",
    )
    parser.add_argument(
        "--env",
        default=os.environ.get("SQUALL_ENV", "development"),
        help="environment: merges config/<env>.yaml over config/default.yaml; an environment "
        "without its file is refused (default: $SQUALL_ENV or development)",
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="extra YAML file merged over the environment's config (repeatable)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="run N server processes on the port, sharing rooms through Redis (default: 1)",
    )
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="event loop: uvloop when installed (auto), or force one (default: auto)",
    )
    return parser.parse_args(argv)


def run(main_coroutine: Any, loop: str) -> None:
    """Run on uvloop when asked or available (``auto``), else on the stdlib's asyncio loop."""
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                raise SquallError("--loop uvloop: uvloop is not installed") from None
        else:
            uvloop.run(main_coroutine)
            return
    asyncio.run(main_coroutine)


def request_logger(app: Squall) -> Callable[[tornado.web.RequestHandler], None]:
    """The Tornado application's ``log_function``: counts and access-logs what it answered
    (files, probes, the metrics and admin pages); the lean paths (actions, upgrades) do so
    themselves (``BareRequest.respond``)."""

    def log_function(handler: tornado.web.RequestHandler) -> None:
        request = handler.request
        status = handler.get_status()
        app.stats.http_answered(status)
        log_request(request.method, request.path, status, request.request_time(), request.remote_ip)

    return log_function


def new_socket_registry(app: Squall) -> SocketRegistry:
    """The open sockets of one endpoint, with the configured heartbeat and limits."""
    server_options = app.config["servers"]["websocket"]["server"]
    return SocketRegistry(
        app,
        ping_interval_ms=server_options["pingInterval"],
        timeout_ms=server_options["timeout"],
        max_message_size=server_options["maxMessageSize"],
        max_buffered_bytes=server_options["maxBufferedBytes"],
        welcome=app.config.get("general.welcomeMessage"),
    )


def build_router(
    options: HandlerOptions, sockets: SocketRegistry, admin_sockets: SocketRegistry | None = None
) -> ServerRouter:
    """The server's delegate: the actions (unless ``servers.web.enabled`` is false), the socket
    paths, then the Tornado application. ``admin_sockets`` holds the admin page's sockets (with
    an admin token)."""
    config = options.app.config
    endpoints = {}
    if config.get("servers.websocket.enabled"):
        endpoints[config.get("servers.websocket.server.pathname")] = SocketEndpoint(
            options, sockets
        )
    admin = config["servers"]["web"]["admin"]
    if admin["token"] is not None and admin_sockets is not None:
        # an ordinary Squall socket, with its own registry, admitted with the token only
        admitted = dataclasses.replace(
            options, authorize=AdminSocketAuthorizer(AdminAuth(admin["token"]))
        )
        endpoints[admin["path"] + "/live"] = SocketEndpoint(admitted, admin_sockets)
    api = ApiServer(options) if options.serve_actions else None
    return ServerRouter(options.api_path, api, endpoints, build_application(options))


def build_application(options: HandlerOptions) -> tornado.web.Application:
    """Mount the health, metrics and admin pages and the static files (unless
    ``servers.web.enabled`` is false), in that order of precedence; the actions and the sockets
    are routed before it (:func:`build_router`)."""
    app = options.app
    config = app.config
    web = config["servers"]["web"]
    files = web["urlPathForFiles"].strip("/")
    routes: list[Any] = health_routes(options, web["healthPath"], web["readyPath"])
    metrics = web["metrics"]
    if metrics["enabled"]:
        routes.append((metrics["path"], MetricsHandler, {"app": app, "token": metrics["token"]}))
    admin = web["admin"]
    if admin["token"] is not None:
        routes.extend(admin_routes(app, admin["path"], admin["token"]))
    if web["enabled"]:
        routes.append((rf"/{files}/(.*)", StaticHandler, {"options": options}))
        if web["rootEndpointType"] == "file":
            routes.append((r"/(.*)", StaticHandler, {"options": options}))
    return tornado.web.Application(
        routes,
        transforms=[ResponseHeaders.for_options(options)],
        log_function=request_logger(app),
    )


def handler_options(app: Squall) -> HandlerOptions:
    """What the handlers read of the config, read once."""
    authorization = app.config.get("servers.websocket.server.authorization")
    authorize = (
        load_callable(authorization, "servers.websocket.server.authorization")
        if authorization
        else None
    )
    return HandlerOptions.from_config(app, app.config, authorize)


def _ssl_context(config: Config) -> ssl.SSLContext | None:
    web = config["servers"]["web"]
    if not web["secure"]:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(
            config.path("servers.web.certFile"), config.path("servers.web.keyFile")
        )
    except (OSError, TypeError, ssl.SSLError) as exc:
        raise SquallError(
            f"servers.web.secure is true but certFile/keyFile cannot be loaded: {exc}"
        ) from None
    return context


async def serve(
    config: Config,
    reuse_port: bool = False,
    shared_metrics: Path | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """Run one server until a stop signal, then shut down as PROTOCOL.md §6 says.

    ``shared_metrics``: the folder where ``--workers`` share their metrics. ``ready()`` is
    called once the server listens (the supervisor then stops the worker it replaces)."""
    app = Squall(config, shared_metrics)
    web = config["servers"]["web"]
    sockets = new_socket_registry(app)
    admin_sockets = None
    if app.monitor is not None and web["admin"]["token"] is not None:
        admin_sockets = new_socket_registry(app)
        app.monitor.watchers = lambda: [pump.connection for pump in admin_sockets]
    options = handler_options(app)
    router = build_router(options, sockets, admin_sockets)
    await app.start()
    http_server = HTTPServer(
        router,
        ServerParams(
            max_header_size=web["maxHeaderSize"],
            max_body_size=web["maxBodySize"],
            idle_timeout=web["idleConnectionTimeout"] / 1000,
            body_timeout=web["idleConnectionTimeout"] / 1000,
            trust_proxy=web["trustProxy"],
            headers=tuple(options.headers.items()),
            cookie=lambda head: request_fingerprint(options, head)[1],
        ),
        _ssl_context(config),
    )
    await http_server.listen(
        tornado.netutil.bind_sockets(web["port"], address=web["bindIP"], reuse_port=reuse_port)
    )
    sockets.start()
    if admin_sockets is not None:
        admin_sockets.start()
    _banner(app, config)
    if ready is not None:
        ready()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()

    log.info("shutting down: no new connections; finishing actions in flight")
    http_server.stop()
    sockets.stop_accepting()
    if admin_sockets is not None:
        admin_sockets.stop_accepting()
    if not await app.drain():
        log.warning("actions still running after general.shutdownTimeout; closing anyway")
    await close_sockets(app, sockets)
    if admin_sockets is not None:
        await close_sockets(app, admin_sockets)
    await app.stop()
    try:
        await asyncio.wait_for(http_server.close_all_connections(), 2)
    except TimeoutError:
        log.warning("some HTTP connections did not close in time")
    log.info("stopped")


async def close_sockets(app: Squall, sockets: SocketRegistry) -> None:
    """Close every socket: 1001 so clients reconnect elsewhere, or destroy (4000) if configured."""
    destroy = app.config.get("servers.websocket.destroyClientsOnShutdown")
    sockets.stop()
    for pump in sockets:
        if destroy:
            pump.connection.destroy()
        else:
            pump.close(CLOSE_GOING_AWAY, "the server is shutting down")
    if not await sockets.wait_empty(timeout=3):
        for pump in sockets:
            pump.abort()
        # an aborted transport reports connection_lost on a later turn of the loop: wait for
        # it, so app.stop() (initializers' stop) comes after every socket's cleanup
        await sockets.wait_empty(timeout=1)


def _banner(app: Squall, config: Config) -> None:
    web = config["servers"]["web"]
    scheme = "https" if web["secure"] else "http"
    host = "localhost" if web["bindIP"] in ("0.0.0.0", "::") else web["bindIP"]
    base = f"{scheme}://{host}:{web['port']}"
    lines = [f"Squall server {app.id} ({config.env}) listening on {web['bindIP']}:{web['port']}"]
    if web["enabled"]:
        lines += [
            f"  actions:   {base}/{web['urlPathForActions']}/<action>  ({len(app.actions)} loaded)",
            f"  files:     {base}/{web['urlPathForFiles']}/  (from {app.public_dir})",
        ]
    if config.get("servers.websocket.enabled"):
        ws = "wss" if web["secure"] else "ws"
        lines.append(
            f"  websocket: {ws}://{host}:{web['port']}{config.get('servers.websocket.server.pathname')}"
        )
    metrics, admin = web["metrics"], web["admin"]
    if metrics["enabled"]:
        guarded = " (Bearer token)" if metrics["token"] else ""
        lines.append(f"  metrics:   {base}{metrics['path']}{guarded}")
    if admin["token"] is not None:
        lines.append(f"  admin:     {base}{admin['path']}")
    if web["enabled"]:
        lines.append(f"  chat demo: {base}/chat.html")
    log.info("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["generate"]:  # python server.py generate action NAME
        return generate.main(ROOT, argv[1:])
    args = parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.port is not None:
        overrides["servers.web.port"] = args.port
    if args.host is not None:
        overrides["servers.web.bindIP"] = args.host
    try:
        config = load_config(ROOT, args.env, args.config, overrides)
    except SquallError as exc:
        print(f"squall: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.get("general.logLevel"), config.get("general.logFormat"))
    if args.workers > 1:
        return run_workers(config, args)
    return run_server(config, args.loop)


def run_server(
    config: Config,
    loop: str,
    reuse_port: bool = False,
    shared_metrics: Path | None = None,
    ready: Callable[[], None] | None = None,
) -> int:
    """Serve until stopped; ``ready()`` is called once the server listens. The exit status."""
    try:
        run(serve(config, reuse_port, shared_metrics, ready), loop)
    except (SquallError, OSError) as exc:
        log.error("cannot start: %s", exc)
        return 2
    finally:
        flush_logs()  # a --workers worker ends with os._exit, which skips logging's own
    return 0


def run_workers(config: Config, args: argparse.Namespace) -> int:
    """Fork ``--workers`` servers that share the port (SO_REUSEPORT) and meet in Redis; kept
    alive, restarted one at a time on SIGHUP (squall/supervisor.py)."""
    if not config.get("redis.enabled"):
        log.error(
            "--workers %d needs Redis so the workers share rooms and pushes: set redis.enabled "
            "(or SQUALL_REDIS_URL)",
            args.workers,
        )
        return 2
    web = config["servers"]["web"]
    try:  # fail here, once, with a clear message, if the port is taken
        for probe in tornado.netutil.bind_sockets(web["port"], address=web["bindIP"]):
            probe.close()
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", web["bindIP"], web["port"], exc)
        return 2
    # Each worker binds its own socket with SO_REUSEPORT: the kernel spreads new connections
    # evenly over the workers (one shared socket lets whichever wakes first take them all), and
    # a rolling restart starts a worker's successor beside it.
    # With metrics or the admin page, they leave their numbers in a folder of their own for
    # each other, so that any of them answers for the machine.
    watched = web["metrics"]["enabled"] or web["admin"]["token"] is not None
    with tempfile.TemporaryDirectory(prefix="squall-metrics-") as shared:
        shared_metrics = Path(shared) if watched else None
        return supervise(
            args.workers,
            lambda index, ready: run_server(config, args.loop, True, shared_metrics, ready),
            stop_timeout=config.get("general.shutdownTimeout") / 1000 + STOP_MARGIN,
        )


if __name__ == "__main__":
    sys.exit(main())
