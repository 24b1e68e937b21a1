"""``GET /health`` and ``GET /ready`` for load balancers and orchestrators.

Answered here, without the action pipeline (no middleware, no connection, no counting), so a
probe works while actions are refused and costs next to nothing:

- health (liveness): 200 ``{"status": "ok"}`` whenever the process answers at all;
- ready (readiness): 200 ``{"ready": true}`` when this server should get new clients, else 503
  ``{"ready": false, "reason": ...}``: shutting down, or its broker is not connected and
  subscribed (Redis away: it serves the clients it has, but cannot reach the others').
"""

from __future__ import annotations

from typing import Any

import tornado.web

from .base import HandlerOptions

__all__ = ["HealthHandler", "ReadyHandler", "health_routes"]


class _ProbeHandler(tornado.web.RequestHandler):
    def initialize(self, options: HandlerOptions) -> None:
        self.app = options.app
        self.set_header("Cache-Control", "no-store")

    def answer(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.finish(body)  # a dict is written as JSON


class HealthHandler(_ProbeHandler):
    def get(self) -> None:
        self.answer(200, {"status": "ok"})


class ReadyHandler(_ProbeHandler):
    def get(self) -> None:
        reason = self.app.readiness_problem()
        if reason is None:
            self.answer(200, {"ready": True})
        else:
            self.answer(503, {"ready": False, "reason": reason})


def health_routes(
    options: HandlerOptions, health_path: str, ready_path: str
) -> list[tuple[str, type, dict[str, Any]]]:
    """The two routes, at ``servers.web.healthPath`` and ``readyPath``."""
    return [
        (health_path, HealthHandler, {"options": options}),
        (ready_path, ReadyHandler, {"options": options}),
    ]
