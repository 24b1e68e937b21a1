"""No request reads outside ``public/``.

A temporary public folder holds ordinary files and hostile symlinks (to a secret file next to
it, to a sibling folder sharing its name's prefix, to /etc, to /dev/zero, a loop) and a FIFO.
Each path of the corpus is tried through ``GET /public/<p>``, ``GET /<p>`` and the ``file``
verb: always 404 / the not-found reply, and never a byte of the secret or of /etc/passwd.
"""

from __future__ import annotations

import os
import urllib.parse
import uuid
from pathlib import Path

import pytest
from testkit import Peer, Server

from .support import assert_still_serving, http, running_server

SECRET = f"squall-hostile-secret-{uuid.uuid4()}"
PASSWD = "root:x:0:0"
NOT_FOUND_TEXT = "That file is not found"
ABSOLUTE = "{absolute secret}"  # replaced by the secret's absolute path at test time

CORPUS = [
    # traversal
    "../secret.txt",
    "../../secret.txt",
    "../" * 12 + "etc/passwd",
    "sub/../../secret.txt",
    "./../secret.txt",
    "..",
    "../",
    "../public/../secret.txt",
    "sub/./../.././secret.txt",
    # encoded dots and slashes, once and twice
    "%2e%2e/secret.txt",
    "%2E%2E/secret.txt",
    "..%2fsecret.txt",
    "%2e%2e%2fsecret.txt",
    "sub/%2e%2e/%2e%2e/secret.txt",
    "%252e%252e/secret.txt",
    "..%252fsecret.txt",
    "%252e%252e%252fsecret.txt",
    "%c0%ae%c0%ae/secret.txt",
    "%uff0e%uff0e/secret.txt",
    "\uff0e\uff0e/secret.txt",
    "\u2025/secret.txt",
    # Windows separators
    "..\\secret.txt",
    "sub\\..\\..\\secret.txt",
    "..%5csecret.txt",
    "%2e%2e%5csecret.txt",
    "..\\/secret.txt",
    # absolute paths and schemes
    "/etc/passwd",
    "//etc/passwd",
    ABSOLUTE,
    "file:///etc/passwd",
    "~/secret.txt",
    "~root/.profile",
    # NUL bytes
    "hello.txt\x00../../secret.txt",
    "../secret.txt\x00.html",
    "hello.txt%00",
    "..%00/secret.txt",
    # symlinks that point out
    "link-out.txt",
    "link-abs.txt",
    "sub/deep-out.txt",
    "dir-out/secret.txt",
    "dir-out/public-evil/secret2.txt",
    "dir-out",
    "sibling/secret2.txt",
    "../public-evil/secret2.txt",
    "etc/passwd",
    "zero",
    "loop",
    "loop/x",
    # not a regular file
    "pipe",
    # trailing dots, odd dots, odd suffixes
    "../secret.txt.",
    "../secret.txt%20",
    "../secret.txt/",
    "...",
    ".../secret.txt",
    "....//secret.txt",
    "..;/secret.txt",
    "secret.txt",
    # very long
    "x/" * 3000 + "../" * 3001 + "secret.txt",
    "a" * 5000,
    "/".join(["sub"] * 1000),
]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("files-tree")
    (base / "secret.txt").write_text(SECRET)
    (base / "public-evil").mkdir()
    (base / "public-evil" / "secret2.txt").write_text(SECRET)
    public = base / "public"
    (public / "sub").mkdir(parents=True)
    (public / "hello.txt").write_text("hello from public")
    (public / "index.html").write_text("<p>index</p>")
    (public / "sub" / "inner.txt").write_text("inner file")
    (public / "alias.txt").symlink_to("hello.txt")
    (public / "link-out.txt").symlink_to("../secret.txt")
    (public / "link-abs.txt").symlink_to(base / "secret.txt")
    (public / "sub" / "deep-out.txt").symlink_to("../../secret.txt")
    (public / "dir-out").symlink_to("..")
    (public / "sibling").symlink_to("../public-evil")
    (public / "etc").symlink_to("/etc")
    (public / "zero").symlink_to("/dev/zero")
    (public / "loop").symlink_to("loop")
    os.mkfifo(public / "pipe")
    return base


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, tree: Path):
    options = {"general": {"paths": {"public": str(tree / "public")}}}
    with running_server(tmp_path_factory, "files", options) as server:
        yield server


def on_the_wire(path: str) -> str:
    """``path`` in a request line: what a request line cannot carry (NUL, spaces, non-ASCII) is
    percent-encoded; everything else, escapes and backslashes included, goes as it is."""
    return urllib.parse.quote(path, safe="/%\\.~;:")


def decodes_to_text(wire_path: str) -> bool:
    """Whether a URL path percent-decodes to UTF-8 text; one that does not (``%c0%ae``, an
    overlong dot) is a malformed request, refused with 400 before any file lookup."""
    try:
        urllib.parse.unquote_to_bytes(wire_path).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def assert_nothing_leaked(body: bytes) -> None:
    text = body.decode("utf-8", "replace")
    assert SECRET not in text
    assert PASSWD not in text


async def try_everywhere(server: Server, peer: Peer, path: str) -> list[tuple[str, int | str]]:
    """The outcome of ``path`` through the three routes, as (route, status or error)."""
    outcomes: list[tuple[str, int | str]] = []
    for prefix in ("/public/", "/"):
        response = await http(server, "GET", prefix + on_the_wire(path))
        assert_nothing_leaked(response.body)
        outcomes.append((prefix, response.status))
        if response.status == 404:
            assert response.body.decode() == NOT_FOUND_TEXT
    reply = await peer.request("file", file=path)
    assert_nothing_leaked(str(reply).encode())
    outcomes.append(("file verb", reply["error"]))
    if reply["error"] == NOT_FOUND_TEXT:
        assert (reply["content"], reply["mime"], reply["length"]) == (None, "text/html", 22)
    return outcomes


def test_corpus_is_large_enough():
    assert len(set(CORPUS)) == len(CORPUS) >= 30


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: repr(p[:40]))
async def test_hostile_path_is_not_found_everywhere(files, tree, path):
    path = path.replace(ABSOLUTE, str(tree / "secret.txt"))
    peer = await Peer.open(files)
    outcomes = await try_everywhere(files, peer, path)
    http_status = 400 if not decodes_to_text(on_the_wire(path)) else 404
    assert outcomes == [
        ("/public/", http_status),
        ("/", http_status),
        ("file verb", NOT_FOUND_TEXT),
    ]
    await assert_still_serving(files)


@pytest.mark.parametrize(
    "path, content",
    [
        ("hello.txt", "hello from public"),
        ("alias.txt", "hello from public"),
        ("sub/inner.txt", "inner file"),
        ("sub/../hello.txt", None),  # a ".." segment is refused even when it stays inside
    ],
)
async def test_files_inside_public_are_served(files, path, content):
    """The control group: the same three routes do serve what is inside (symlinks too)."""
    peer = await Peer.open(files)
    outcomes = await try_everywhere(files, peer, path)
    if content is None:
        assert outcomes == [("/public/", 404), ("/", 404), ("file verb", NOT_FOUND_TEXT)]
    else:
        assert outcomes == [("/public/", 200), ("/", 200), ("file verb", None)]
        response = await http(files, "GET", "/public/" + path)
        assert response.body.decode() == content
        assert (await peer.request("file", file=path))["content"] == content
    await assert_still_serving(files)


@pytest.mark.parametrize(
    "range_header",
    ["bytes=0-99999999999999999999", "bytes=-0", "bytes=5-1", "bytes=" + "0-1," * 5000, "lines=1"],
)
async def test_absurd_ranges_on_a_public_file(files, range_header):
    response = await http(files, "GET", "/public/hello.txt", headers={"Range": range_header})
    assert response.status in (200, 206, 416), response
    assert_nothing_leaked(response.body)
    await assert_still_serving(files)
