"""The file verb: found, base64, directories, missing and every way out of public/
(PROTOCOL.md §2.1, §2.4, §3)."""

from __future__ import annotations

import base64
import datetime

import pytest
from testkit import action_reply

from .support import PUBLIC

NOT_FOUND = {"error": "That file is not found", "content": None, "mime": "text/html", "length": 22}


def modified(path) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.UTC)


async def test_file_found_reply_shape(client):
    reply = await client.request("file", file="index.html")
    expected_text = (PUBLIC / "index.html").read_text()
    assert reply == action_reply(
        {
            "content": expected_text,
            "mime": "text/html",
            "length": len(expected_text.encode()),
            "lastModified": reply["lastModified"],
            "error": None,
        },
        message_id=1,
        count=1,
    )
    stamp = datetime.datetime.fromisoformat(reply["lastModified"])
    assert stamp.tzinfo is not None
    assert abs((stamp - modified(PUBLIC / "index.html")).total_seconds()) < 1


async def test_file_length_counts_bytes_not_characters(client):
    reply = await client.request("file", file="utf8.html")
    raw = (PUBLIC / "utf8.html").read_bytes()
    assert (reply["content"], reply["length"]) == (raw.decode(), len(raw))
    assert len(reply["content"]) < len(raw)


@pytest.mark.parametrize(
    ("name", "mime"),
    [("hello.txt", "text/plain"), ("style.css", "text/css"), ("sub/index.html", "text/html")],
)
async def test_file_found_has_its_mime(client, name, mime):
    reply = await client.request("file", file=name)
    assert (reply["error"], reply["mime"], reply["content"]) == (
        None,
        mime,
        (PUBLIC / name).read_text(),
    )


async def test_file_binary_comes_as_base64(client):
    reply = await client.request("file", file="pixel.png")
    raw = (PUBLIC / "pixel.png").read_bytes()
    assert reply == action_reply(
        {
            "content": base64.b64encode(raw).decode(),
            "encoding": "base64",
            "mime": "image/png",
            "length": len(raw),
            "lastModified": reply["lastModified"],
            "error": None,
        }
    )


async def test_file_directory_serves_its_index(client):
    reply = await client.request("file", file="sub")
    assert reply["content"] == (PUBLIC / "sub" / "index.html").read_text()


async def test_file_missing_is_not_found(client):
    assert await client.request("file", file="nope.html") == action_reply(
        NOT_FOUND, message_id=1, count=1
    )


@pytest.mark.parametrize(
    "name",
    [
        "docs",  # a directory without index.html
        "docs/",
        "../secret.txt",
        "sub/../../secret.txt",
        "./../secret.txt",
        "/etc/passwd",
        "%2e%2e/secret.txt",
        "..%2fsecret.txt",
        "..\\secret.txt",
        "link-out.txt",  # a symlink leading outside public/
        "hello.txt\x00.html",
    ],
)
async def test_file_outside_or_unservable_is_not_found(client, name):
    assert await client.request("file", file=name) == action_reply(NOT_FOUND)
