"""Static files of ``public/``: Tornado's ``StaticFileHandler`` (MIME, ETag, Last-Modified,
304, ranges), with Squall's own lookup, which never leaves ``public/``.

The lookup is :class:`squall.files.PublicFiles`, the same one the ``file`` verb uses. Tornado has
already decoded ``%2e%2e`` to ``..`` by the time the path arrives, so encoded escapes are refused
like plain ones.
"""

from __future__ import annotations

import os
from typing import Any

import tornado.httputil
import tornado.web

from squall import Squall
from squall.errors import FileNotFound

from .base import HandlerOptions


class StaticHandler(tornado.web.StaticFileHandler):
    """Serves ``public/`` at ``/public/<path>`` and, with ``rootEndpointType: file``, at ``/``.
    (The configured headers and the fingerprint cookie: :class:`~handlers.base.ResponseHeaders`.)
    """

    def initialize(self, options: HandlerOptions) -> None:  # type: ignore[override]
        super().initialize(path=str(options.app.files.root))
        self.squall = options  # not ``options``: that is the HTTP method's handler
        self._requested = ""

    @property
    def app(self) -> Squall:
        return self.squall.app

    def parse_url_path(self, url_path: str) -> str:
        self._requested = url_path
        return url_path

    @classmethod
    def get_absolute_path(cls, root: str, path: str) -> str:
        """Only a candidate: :meth:`validate_absolute_path` decides, through PublicFiles, so
        that every refused path is the same plain 404 (a 403 would confirm what exists)."""
        return os.path.join(root, path)

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        found = self.app.files.resolve(self._requested)
        if found is None:
            raise tornado.web.HTTPError(404)
        return str(found)

    def compute_etag(self) -> str | None:
        """Size and modification time: cheap, and changes whenever the file does (Tornado's
        default hashes the content once per process and never notices an edit)."""
        # os.stat, not Tornado's cached private ``_stat``: one system call, public names only
        assert self.absolute_path is not None
        stat = os.stat(self.absolute_path)
        return f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'

    def get_cache_time(self, path: str, modified: Any, mime_type: str) -> int:
        return self.squall.file_cache_seconds

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        if status_code == 404:
            self.finish(FileNotFound().render(self.app.messages))
        else:
            self.finish(tornado.httputil.responses.get(status_code, "Error"))
