"""TLS: ``servers.web.secure`` with a self-signed certificate made
here. HTTPS actions and WSS work, the fingerprint cookie carries ``Secure``, and the WSS path
(a different transport inside the server) enforces the same limits and cleanup as plain WS."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import subprocess
from pathlib import Path

import pytest
from testkit import OP_TEXT, Peer, action_frame, frame_bytes, open_stream

from .support import dropped_when_idle, http, running_server, settled

IDLE = 1.0  # servers.web.idleConnectionTimeout of the TLS server, in seconds
BUFFER = 262144  # its maxBufferedBytes
LIMIT = 65536  # its maxMessageSize
DROPPED = r"WARNING squall\.websocket: closing \S+: it stopped reading and \d+ bytes wait for it"


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1: the ``cryptography`` package when
    installed, else ``openssl req``."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
        )
        return cert, key
    import ipaddress

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory):
    cert, key = make_certificate(tmp_path_factory.mktemp("certificate"))
    client = ssl.create_default_context(cafile=str(cert))  # verifies the chain and the name
    options = {
        "servers": {
            "web": {
                "secure": True,
                "certFile": str(cert),
                "keyFile": str(key),
                "idleConnectionTimeout": int(IDLE * 1000),
            },
            "websocket": {"server": {"maxBufferedBytes": BUFFER, "maxMessageSize": LIMIT}},
        }
    }
    with running_server(tmp_path_factory, "secure", options, client_ssl=client) as server:
        yield server


#: Set once a WSS upgrade got no welcome: later WSS tests then fail at once, not after a timeout
#: each (the tier must stay fast while that bug stands).
_wss_broken: list[str] = []


async def open_wss(server, **options) -> Peer:
    """A WSS peer, its welcome taken."""
    if _wss_broken:
        raise AssertionError(f"WSS is broken: {_wss_broken[0]}")
    try:
        return await Peer.open(server, **options)
    except AssertionError as exc:
        _wss_broken.append(f"an upgraded WSS socket got no welcome frame ({exc})")
        raise


async def assert_still_serving_tls(server, wss: bool = True) -> None:
    """A fresh HTTPS client gets an action reply, then (unless the test is about HTTPS only)
    a fresh WSS client does too."""
    response = await http(server, "GET", "/api/randomNumber")
    assert response.status == 200, response
    assert server.alive()
    if not wss:
        return
    peer = await open_wss(server)
    try:
        assert "error" not in await peer.action("randomNumber")
    finally:
        await peer.close()


def assert_secure_cookie(set_cookie: str | None) -> None:
    assert set_cookie is not None
    flags = [part.strip().lower() for part in set_cookie.split(";")]
    assert flags[0].startswith("sessionid=")
    assert {"secure", "httponly", "samesite=lax", "path=/"} <= set(flags), set_cookie


async def test_https_action_works_and_the_cookie_is_secure(secure):
    response = await http(secure, "GET", "/api/status")
    assert response.status == 200
    assert response.json()["connections"]["web"] == 1
    assert_secure_cookie(response.headers.get("Set-Cookie"))
    await assert_still_serving_tls(secure, wss=False)


async def test_https_static_file_sets_a_secure_cookie(secure):
    response = await http(secure, "GET", "/public/index.html")
    assert response.status == 200
    assert_secure_cookie(response.headers.get("Set-Cookie"))
    await assert_still_serving_tls(secure, wss=False)


async def test_wss_welcome_action_and_secure_cookie(secure):
    peer = await open_wss(secure)  # asserts the welcome frame
    assert_secure_cookie(peer.response.headers.get("Set-Cookie"))
    reply = await peer.action("echo", word="over TLS")
    assert (reply["word"], reply["messageCount"]) == ("over TLS", 1)
    details = (await peer.request("detailsView"))["data"]
    assert details["type"] == "webSocket"
    await assert_still_serving_tls(secure)


@pytest.mark.parametrize(
    "frames, code",
    [
        (frame_bytes(OP_TEXT, b'{"event": "ping"}', masked=False), 1002),
        (frame_bytes(OP_TEXT, b"\xff\xfe"), 1007),
        (frame_bytes(OP_TEXT, b"x" * (LIMIT + 1)), 1009),
    ],
    ids=["unmasked", "invalid UTF-8", "over maxMessageSize"],
)
async def test_wss_protocol_errors_close_with_their_code(secure, frames, code):
    peer = await open_wss(secure)
    await peer.send_raw(frames)
    assert (await peer.wait_closed())[0] == code
    await assert_still_serving_tls(secure)


async def test_wss_client_that_stops_reading_is_closed_1008(secure):
    stalled = await open_wss(secure, rcvbuf=4096)
    talker = await open_wss(secure)
    for peer in (stalled, talker):
        assert (await peer.request("roomAdd", room="flood"))["status"] == "OK"
    stalled.pause_reading()
    log_start = secure.log_size()
    pad = "x" * 32 * 1024
    for index in range(400):  # 12.5 MiB said while one member reads nothing
        await talker.send_json(
            {"event": "say", "room": "flood", "message": {"index": index, "pad": pad}}
        )
        copy = await talker.next(lambda f: f.get("context") == "user")
        assert copy["message"]["index"] == index
        if index % 10 == 0 and secure.logged(DROPPED, log_start):
            break  # dropped: read again at once, for the close frame waits only 5 s
    await secure.wait_log(DROPPED, log_start)
    stalled.resume_reading()
    assert await stalled.wait_closed() == (1008, "outbound buffer full: the client is not reading")
    await assert_still_serving_tls(secure)


async def test_wss_client_that_vanishes_mid_action_leaves_counters_at_zero(secure):
    await settled(secure, 0)
    peers = [await open_wss(secure) for _ in range(5)]
    for peer in peers:
        await peer.send_json(action_frame(1, "sleepTest", sleepDuration=400))
    while (await secure.status())["pendingActions"] < 6:
        await asyncio.sleep(0.02)  # poll interval: in-flight counts have no event to await
    for peer in peers:
        peer.reset()
    await settled(secure, 0)
    await assert_still_serving_tls(secure)


async def test_plain_http_on_the_tls_port_is_refused(secure):
    reader, writer = await asyncio.open_connection("127.0.0.1", secure.port)
    try:
        writer.write(b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n")
        data = await asyncio.wait_for(reader.read(4096), 5)
        assert b"200 OK" not in data
    except ConnectionError:
        pass
    finally:
        writer.transport.abort()
    await assert_still_serving_tls(secure, wss=False)


async def test_stalled_tls_handshake_is_dropped_after_idleConnectionTimeout(secure):
    """TCP open, the first bytes of a ClientHello, then nothing: the handshake must not hold
    the connection longer than an idle one."""
    reader, writer = await asyncio.open_connection("127.0.0.1", secure.port)
    writer.write(b"\x16\x03\x01\x02\x00\x01")
    try:
        await dropped_when_idle(reader, IDLE)
    finally:
        writer.transport.abort()
    await assert_still_serving_tls(secure, wss=False)


async def test_silent_tls_client_after_handshake_is_dropped(secure):
    reader, writer = await open_stream(secure)
    try:
        assert await dropped_when_idle(reader, IDLE) == b""
    finally:
        writer.transport.abort()
    await assert_still_serving_tls(secure, wss=False)
