"""Render the browser client: the template in this folder plus the server's config.

ActionHero regenerates its client at every boot so that the file a page loads always matches the
server it talks to: the socket's pathname, the fingerprint cookie, the client options. Squall does
the same (PROTOCOL.md §7). The template is ordinary JavaScript with two markers, each replaced by
a JavaScript literal; rendering fails loudly if a marker is missing rather than ship a client
without defaults.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jsmin import jsmin

__all__ = ["render_client", "render_source"]

TEMPLATE = Path(__file__).with_name("actionheroClient.js")

DEFAULTS_MARKER = "/* squall:defaults */ {}"
URL_MARKER = "/* squall:url */ null"

#: The one ``clientUrl`` that is code, not a URL: the origin of the page that loads the client.
PAGE_ORIGIN = "window.location.origin"


def render_source(config: Mapping[str, Any]) -> str:
    """Return the client's source with the config's defaults filled in.

    The defaults are ``servers.websocket.client`` plus the socket's ``pathname`` and the
    fingerprint ``cookieKey``. ``clientUrl`` becomes a string literal, except for
    ``window.location.origin``, which stays an expression evaluated in the page.
    """
    websocket = config["servers"]["websocket"]
    defaults = {
        **websocket["client"],
        "pathname": websocket["server"]["pathname"],
        "cookieKey": config["servers"]["web"]["fingerprint"]["cookieKey"],
    }
    url = websocket["clientUrl"]
    source = TEMPLATE.read_text(encoding="utf-8")
    source = _fill(source, DEFAULTS_MARKER, json.dumps(defaults, indent=2).replace("\n", "\n  "))
    return _fill(source, URL_MARKER, url if url == PAGE_ORIGIN else json.dumps(url))


def render_client(config: Mapping[str, Any], public_dir: Path) -> list[Path]:
    """Write ``<public_dir>/<clientJsPath>/<clientJsName>.js`` and ``.min.js``.

    Called at every boot. Each file is written to a temporary file and renamed into place, so a
    browser fetching the client while the server boots gets the old file or the new one, never
    half of one. A null ``clientJsName`` renders nothing.

    Returns:
        The written paths, the full file first; ``[]`` when ``clientJsName`` is null.
    """
    websocket = config["servers"]["websocket"]
    name = websocket["clientJsName"]
    if name is None:
        return []
    source = render_source(config)
    folder = Path(public_dir) / websocket["clientJsPath"].strip("/")
    folder.mkdir(parents=True, exist_ok=True)
    full, minified = folder / f"{name}.js", folder / f"{name}.min.js"
    _write_atomically(full, source)
    _write_atomically(minified, jsmin(source))
    return [full, minified]


def _fill(source: str, marker: str, value: str) -> str:
    if source.count(marker) != 1:
        raise ValueError(f"{TEMPLATE} must contain {marker!r} exactly once")
    return source.replace(marker, value)


def _write_atomically(path: Path, text: str) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, 0o644)  # mkstemp makes 0600; the file is public by definition
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
