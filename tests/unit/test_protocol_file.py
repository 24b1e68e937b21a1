"""The ``file`` verb (PROTOCOL.md §2.4): found files, base64 for binary, and no way out of public/.

The folder every test gets::

    tmp_path/
      secret.txt                  must never be read
      outside/file.txt            must never be read
      public/
        index.html                "<h1>héllo</h1>"
        sub/page.txt, docs/index.html, empty/ (no index), image.png (binary), blank.txt
        link-in -> index.html     (a symlink inside public: served)
        link-out -> ../secret.txt, dir-out -> ../outside, docs-out/index.html -> ../../secret.txt
        fifo                      (not a regular file)
"""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime

import pytest

from squall.errors import ErrorMessages

from .conftest import feed

MTIME = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
SECRET = "TOP SECRET: never served"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00"


@pytest.fixture
def tree(tmp_path, public):
    (tmp_path / "secret.txt").write_text(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "file.txt").write_text(SECRET)
    files = {
        "index.html": "<h1>héllo</h1>".encode(),
        "sub/page.txt": b"plain text\n",
        "docs/index.html": b"<p>docs</p>",
        "image.png": PNG,
        "blank.txt": b"",
        "style.css": b"body{}",
        "app.js": b"let a=1;",
        "data.json": b'{"a":1}',
    }
    for relative, content in files.items():
        path = public / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.utime(path, (MTIME, MTIME))
    (public / "empty").mkdir()
    (public / "link-in").symlink_to("index.html")
    (public / "link-out").symlink_to(tmp_path / "secret.txt")
    (public / "dir-out").symlink_to(tmp_path / "outside", target_is_directory=True)
    (public / "docs-out").mkdir()
    (public / "docs-out" / "index.html").symlink_to(tmp_path / "secret.txt")
    os.mkfifo(public / "fifo")
    return public


@pytest.fixture
async def core(make_core, tree):
    return await make_core()


async def ask(core, path):
    return await feed(
        core.protocol, core.connect(), {"event": "file", "messageId": 1, "file": path}
    )


def found(content, mime, length, **extra):
    return {
        "content": content,
        "mime": mime,
        "length": length,
        "lastModified": "2024-01-02T03:04:05Z",
        "error": None,
        "context": "response",
        "messageId": 1,
        "messageCount": 1,
        **extra,
    }


NOT_FOUND = {
    "error": "That file is not found",
    "content": None,
    "mime": "text/html",
    "length": 22,
    "context": "response",
    "messageId": 1,
    "messageCount": 1,
}


# -- found ------------------------------------------------------------------------------------


async def test_file_utf8_text(core):
    assert await ask(core, "index.html") == found("<h1>héllo</h1>", "text/html", 15)


@pytest.mark.parametrize("path", ["/index.html", "./index.html", "//index.html"])
async def test_file_path_spellings_of_one_file(core, path):
    assert await ask(core, path) == found("<h1>héllo</h1>", "text/html", 15)


async def test_file_in_a_subfolder(core):
    assert await ask(core, "sub/page.txt") == found("plain text\n", "text/plain", 11)
    assert await ask(core, "sub//./page.txt") == found("plain text\n", "text/plain", 11)


@pytest.mark.parametrize("path", ["", "/", "."])
async def test_file_root_serves_index(core, path):
    assert await ask(core, path) == found("<h1>héllo</h1>", "text/html", 15)


@pytest.mark.parametrize("path", ["docs", "docs/"])
async def test_file_directory_serves_its_index(core, path):
    assert await ask(core, path) == found("<p>docs</p>", "text/html", 11)


async def test_file_binary_comes_as_base64(core):
    reply = await ask(core, "image.png")

    assert reply == found(
        base64.b64encode(PNG).decode("ascii"), "image/png", len(PNG), encoding="base64"
    )
    assert base64.b64decode(reply["content"]) == PNG


async def test_file_empty(core):
    assert await ask(core, "blank.txt") == found("", "text/plain", 0)


@pytest.mark.parametrize(
    ("path", "mime", "content"),
    [
        ("style.css", "text/css", "body{}"),
        ("app.js", "text/javascript", "let a=1;"),
        ("data.json", "application/json", '{"a":1}'),
    ],
)
async def test_file_mime_types(core, path, mime, content):
    assert await ask(core, path) == found(content, mime, len(content))


async def test_file_symlink_inside_public_is_served(core):
    assert await ask(core, "link-in") == found("<h1>héllo</h1>", "text/html", 15)


async def test_file_last_modified_keeps_fractions(core, tree):
    os.utime(tree / "blank.txt", (MTIME + 0.5, MTIME + 0.5))

    reply = await ask(core, "blank.txt")

    assert reply["lastModified"] == "2024-01-02T03:04:05.500000Z"


# -- not found --------------------------------------------------------------------------------


TRAVERSAL = [
    "../secret.txt",
    "../../secret.txt",
    "./../secret.txt",
    "/../secret.txt",
    "//../secret.txt",
    "sub/../../secret.txt",
    "sub/../../public/../secret.txt",
    "..",
    "../",
    "sub/../..",
    "index.html/..",
    "..\\secret.txt",
    "sub\\..\\..\\secret.txt",
    "\\..\\secret.txt",
    "..\\",
    "index.html\x00",
    "\x00",
    "../secret.txt\x00.html",
    "index.html\x00../secret.txt",
    "%2e%2e/secret.txt",
    "%2e%2e%2fsecret.txt",
    "..%2fsecret.txt",
    "..%5csecret.txt",
    "%252e%252e/secret.txt",
    "..;/secret.txt",
    "....//secret.txt",
    "..././secret.txt",
    "\u2025/secret.txt",
    "\uff0e\uff0e/secret.txt",
    "~/secret.txt",
    "file:///etc/passwd",
    "/etc/passwd",
    "C:\\Windows\\win.ini",
    "link-out",
    "link-out/",
    "sub/../link-out",
    "dir-out",
    "dir-out/",
    "dir-out/file.txt",
    "docs-out",
    "docs-out/",
    "fifo",
    "empty",
    "empty/",
    "missing.html",
    "sub/missing",
    "image.png/x",
]


@pytest.mark.parametrize("path", TRAVERSAL)
async def test_file_not_found_or_outside_public(core, path):
    assert await ask(core, path) == NOT_FOUND


async def test_file_absolute_path_of_a_secret_is_not_found(core, tmp_path):
    assert await ask(core, str(tmp_path / "secret.txt")) == NOT_FOUND
    assert await ask(core, str(tmp_path / "public" / ".." / "secret.txt")) == NOT_FOUND


@pytest.mark.parametrize("value", [None, 5, True, ["index.html"], {"file": "index.html"}])
async def test_file_name_not_a_string(core, value):
    assert await ask(core, value) == NOT_FOUND


async def test_file_name_missing(core):
    reply = await feed(core.protocol, core.connect(), {"event": "file", "messageId": 1})

    assert reply == NOT_FOUND


def test_traversal_corpus_is_large_enough():
    assert len(set(TRAVERSAL)) >= 30


async def test_file_not_found_text_and_length_follow_config(make_core, tree):
    core = await make_core(messages=ErrorMessages({"fileNotFound": "nöpe"}))

    assert await ask(core, "../secret.txt") == {**NOT_FOUND, "error": "nöpe", "length": 5}
