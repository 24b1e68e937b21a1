"""The one safe way to find a file under ``public/``, shared by the static handler and the
``file`` verb.

A request names a path relative to ``public/``. It is refused (``None``) when it contains a NUL
byte or a backslash, when any segment is ``..``, or when the real path (symlinks followed) is not
inside the real ``public/`` folder. A directory means its ``index.html``. Only regular files are
served. Decoding of ``%2e%2e`` and friends happens before this, in the transport, so encoded
dots arrive here as dots and are refused like any other.
"""

from __future__ import annotations

import base64
import mimetypes
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["PublicFiles", "mime_type"]

mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/css", ".css")
mimetypes.add_type("image/svg+xml", ".svg")
mimetypes.add_type("application/json", ".json")
mimetypes.add_type("font/woff2", ".woff2")


def mime_type(path: Path) -> str:
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


class PublicFiles:
    """Looks up and reads files of one public folder without ever leaving it."""

    def __init__(self, root: Path, directory_index: str = "index.html") -> None:
        self.root = Path(os.path.realpath(root))
        self.directory_index = directory_index

    def resolve(self, relative: str) -> Path | None:
        """The real path of the file ``relative`` names, or None when it must not be served."""
        if not isinstance(relative, str) or "\x00" in relative or "\\" in relative:
            return None
        parts = [p for p in relative.split("/") if p not in ("", ".")]
        if any(p == ".." for p in parts):
            return None
        candidate = os.path.realpath(os.path.join(self.root, *parts))
        if candidate != str(self.root) and not candidate.startswith(str(self.root) + os.sep):
            return None
        if os.path.isdir(candidate):
            candidate = os.path.realpath(os.path.join(candidate, self.directory_index))
            if not candidate.startswith(str(self.root) + os.sep):
                return None
        return Path(candidate) if os.path.isfile(candidate) else None

    def read_reply(self, relative: str) -> dict[str, Any] | None:
        """The ``file`` verb's reply fields (PROTOCOL.md §2.4), or None when not found."""
        path = self.resolve(relative)
        if path is None:
            return None
        try:
            raw = path.read_bytes()
            modified = path.stat().st_mtime
        except OSError:
            return None
        reply: dict[str, Any] = {"mime": mime_type(path), "length": len(raw)}
        try:
            reply["content"] = raw.decode("utf-8")
        except UnicodeDecodeError:
            reply["content"] = base64.b64encode(raw).decode("ascii")
            reply["encoding"] = "base64"
        reply["lastModified"] = (
            datetime.fromtimestamp(modified, UTC).isoformat().replace("+00:00", "Z")
        )
        reply["error"] = None
        return reply
