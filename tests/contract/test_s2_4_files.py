"""PROTOCOL.md §2.4 from outside: the ``file`` verb's replies, found (text and base64) and not
found (missing, a directory without index.html, outside public/), on a public folder of known
files (``general.paths.public``)."""

from __future__ import annotations

import base64
import datetime

import pytest
from testkit import ISO8601, Match

NOT_FOUND = "That file is not found"


@pytest.fixture
async def client(renamed, connect):
    return await connect(renamed)


def modified(path) -> Match:
    """An ISO 8601 time with a zone, within a second of the file's mtime."""
    mtime = path.stat().st_mtime

    def accepts(value):
        parsed = datetime.datetime.fromisoformat(value)
        return parsed.tzinfo is not None and abs(parsed.timestamp() - mtime) < 1

    return Match(f"<ISO 8601 of mtime {mtime}>", accepts)


def found(content, mime, length, last_modified, message_id=1, **extra) -> dict:
    return {
        "content": content,
        "mime": mime,
        "length": length,
        "lastModified": last_modified,
        "error": None,
        **extra,
        "context": "response",
        "messageId": message_id,
        "messageCount": message_id,
    }


def not_found(message_id=1) -> dict:
    return {
        "error": NOT_FOUND,
        "content": None,
        "mime": "text/html",
        "length": 22,
        "context": "response",
        "messageId": message_id,
        "messageCount": message_id,
    }


async def test_s2_4_found_file_is_content_mime_length_lastModified_and_null_error(client, site):
    reply = await client.request("file", file="index.html")
    data = site.FILES["index.html"]
    assert reply == found(data.decode(), "text/html", len(data), modified(site.path("index.html")))
    assert reply["lastModified"] == ISO8601


async def test_s2_4_length_counts_bytes_of_utf8_text(client, site):
    data = site.FILES["hello.html"]
    reply = await client.request("file", file="hello.html")
    assert reply == found(data.decode(), "text/html", len(data), modified(site.path("hello.html")))
    assert len(data) > len(data.decode())


async def test_s2_4_mime_follows_the_file(client, site):
    data = site.FILES["style.css"]
    reply = await client.request("file", file="style.css")
    assert reply == found(data.decode(), "text/css", len(data), modified(site.path("style.css")))


async def test_s2_4_file_that_is_not_utf8_comes_as_base64(client, site):
    data = site.FILES["data.bin"]
    reply = await client.request("file", file="data.bin")
    assert reply == found(
        base64.b64encode(data).decode(),
        Match("<a mime>", lambda m: isinstance(m, str) and "/" in m),
        len(data),
        modified(site.path("data.bin")),
        encoding="base64",
    )


async def test_s2_4_directory_with_index_html_serves_it(client, site):
    data = site.FILES["sub/index.html"]
    reply = await client.request("file", file="sub")
    assert reply == found(
        data.decode(), "text/html", len(data), modified(site.path("sub/index.html"))
    )


@pytest.mark.parametrize(
    "name",
    [
        "missing.html",
        "empty",
        "empty/",
        "dangling.html",
        "../secret.txt",
        "sub/../../secret.txt",
        "/etc/passwd",
        "..",
    ],
)
async def test_s2_4_missing_directory_without_index_or_outside_public_is_not_found(client, name):
    assert await client.request("file", file=name) == not_found()
