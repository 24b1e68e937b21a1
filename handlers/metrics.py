"""``servers.web.metrics.path`` (default ``/metrics``): Prometheus metrics of the machine.

With ``servers.web.metrics.token`` set, a scrape must send ``Authorization: Bearer <token>``;
anything else gets 401 and ``WWW-Authenticate: Bearer``, as Prometheus' ``authorization``
scrape option expects.
"""

from __future__ import annotations

import hmac

import tornado.web

from squall import Squall
from squall.admin import bearer_token


class MetricsHandler(tornado.web.RequestHandler):
    """One scrape: the text of :class:`squall.exposition.MetricsExporter`."""

    def initialize(self, app: Squall, token: str | None) -> None:
        self.app = app
        self.token = token

    async def get(self) -> None:
        if self.token is not None:
            given = bearer_token(self.request.headers.get("Authorization"))
            if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
                self.set_status(401)
                self.set_header("WWW-Authenticate", 'Bearer realm="squall metrics"')
                self.set_header("Content-Type", "text/plain; charset=utf-8")
                self.finish("send Authorization: Bearer <servers.web.metrics.token>\n")
                return
        exporter, monitor = self.app.exporter, self.app.monitor
        assert exporter is not None and monitor is not None  # the route needs metrics enabled
        await monitor.refresh()
        body, content_type = exporter.render(self.request.headers.get("Accept"))
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "no-store")
        self.finish(body)
