"""WebSocket framing (RFC 6455), server side, without I/O: bytes in, events out; frames built.

:class:`FrameParser` is fed whatever bytes arrived (``feed``) and returns the complete messages
and control frames found so far; partial frames simply wait for more bytes. Protocol violations
raise :class:`FrameError` carrying the close code to send (1002 protocol error, 1007 invalid
UTF-8, 1009 too big). :func:`encode` builds the unmasked frames a server sends; a broadcast
builds its frame once and writes the same bytes to every member.

``permessage-deflate`` (RFC 7692) is :class:`Deflate`: negotiated from the client's offer,
with per-connection context, and a bound on inflated size (a small compressed frame must not
expand into gigabytes).
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from dataclasses import dataclass

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "Deflate",
    "Event",
    "FrameError",
    "FrameParser",
    "accept_key",
    "close_payload",
    "encode",
    "parse_close",
]

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
_DATA_OPCODES = (OP_TEXT, OP_BINARY)
_CONTROL_OPCODES = (OP_CLOSE, OP_PING, OP_PONG)

CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_DEFLATE_TAIL = b"\x00\x00\xff\xff"


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


class FrameError(Exception):
    """The peer broke the protocol; close with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Event:
    """One complete message or control frame: ``opcode`` and its (unmasked) payload.

    Text messages carry ``text`` (already validated UTF-8); others carry ``data``.
    """

    opcode: int
    data: bytes = b""
    text: str | None = None


def encode(opcode: int, payload: bytes, rsv1: bool = False) -> bytes:
    """One unmasked, final frame, as a server sends it."""
    first = 0x80 | opcode | (0x40 if rsv1 else 0)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, length)
    elif length < 65536:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    return header + payload


def close_payload(code: int, reason: str = "") -> bytes:
    """The body of a close frame; the reason is cut to fit the 125-byte control frame limit."""
    encoded = reason.encode("utf-8")[:123]
    return struct.pack("!H", code) + encoded.decode("utf-8", "ignore").encode("utf-8")


def parse_close(payload: bytes) -> tuple[int, str]:
    """The code and reason of a received close frame (1005 when it has none).

    Raises:
        FrameError: 1002 for a one-byte body or a code a peer may not send (RFC 6455 7.4),
            1007 for a reason that is not UTF-8.
    """
    if not payload:
        return CLOSE_NO_STATUS, ""
    if len(payload) == 1:
        raise FrameError(CLOSE_PROTOCOL_ERROR, "close frame with a one-byte body")
    (code,) = struct.unpack("!H", payload[:2])
    if not (code in _SENDABLE_CODES or 3000 <= code <= 4999):
        raise FrameError(CLOSE_PROTOCOL_ERROR, f"close code {code} may not be sent")
    try:
        return code, payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(CLOSE_INVALID_DATA, "close reason is not valid UTF-8") from None


#: Codes a peer may put in a close frame (RFC 6455 7.4.1; 1004-1006 and 1015 are reserved).
_SENDABLE_CODES = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)


def _unmask(mask: bytes, payload: bytes) -> bytes:
    if mask == b"\x00\x00\x00\x00" or not payload:
        return payload
    length = len(payload)
    key = (mask * (length // 4 + 1))[:length]
    masked = int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")
    return masked.to_bytes(length, "little")


class FrameParser:
    """Incremental parser of client frames.

    Args:
        max_size: the largest message (after reassembly and inflation) accepted, in bytes.
        deflate: the negotiated compression, if any.
    """

    def __init__(self, max_size: int, deflate: Deflate | None = None) -> None:
        self.max_size = max_size
        self.deflate = deflate
        self._buffer = bytearray()
        # One growing buffer, not a list of fragments: a million 1-byte (or empty) fragments
        # must cost about the message's size, not a million objects.
        self._fragments: bytearray | None = None
        self._fragment_opcode = 0
        self._compressed = False

    def feed(self, data: bytes) -> list[Event]:
        """Parse what ``data`` completes. Raises :class:`FrameError` on a violation."""
        buffer = self._buffer
        buffer += data
        events: list[Event] = []
        position = 0
        available = len(buffer)
        while available - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            length = second & 0x7F
            offset = position + 2
            if length == 126:
                if available - offset < 2:
                    break
                (length,) = struct.unpack_from("!H", buffer, offset)
                offset += 2
            elif length == 127:
                if available - offset < 8:
                    break
                (length,) = struct.unpack_from("!Q", buffer, offset)
                offset += 8
            if not second & 0x80:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
            if length > self.max_size:
                raise FrameError(CLOSE_TOO_BIG, f"frame of {length} bytes exceeds {self.max_size}")
            if available - offset < 4 + length:
                break
            mask = bytes(buffer[offset : offset + 4])
            payload = _unmask(mask, bytes(buffer[offset + 4 : offset + 4 + length]))
            position = offset + 4 + length
            event = self._frame(first, payload)
            if event is not None:
                events.append(event)
        if position:
            del buffer[:position]
        return events

    def _frame(self, first: int, payload: bytes) -> Event | None:
        fin, rsv1, opcode = first & 0x80, first & 0x40, first & 0x0F
        if first & 0x30 or (rsv1 and (self.deflate is None or opcode in _CONTROL_OPCODES)):
            raise FrameError(CLOSE_PROTOCOL_ERROR, "reserved bits set without an extension")
        if opcode in _CONTROL_OPCODES:
            if not fin or len(payload) > 125:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "invalid control frame")
            return Event(opcode, payload)
        fragments = self._fragments
        if opcode in _DATA_OPCODES:
            if fragments is not None:
                raise FrameError(
                    CLOSE_PROTOCOL_ERROR, "a new message began inside a fragmented one"
                )
            self._compressed = bool(rsv1)
            if fin:
                return self._message(opcode, payload)
            self._fragment_opcode = opcode
            self._fragments = bytearray(payload)
            return None
        if opcode != OP_CONTINUATION or fragments is None:
            raise FrameError(CLOSE_PROTOCOL_ERROR, f"unexpected opcode {opcode}")
        if rsv1:  # RFC 7692 6.1: only a message's first frame says it is compressed
            raise FrameError(CLOSE_PROTOCOL_ERROR, "compression bit set on a continuation frame")
        if len(fragments) + len(payload) > self.max_size:
            raise FrameError(CLOSE_TOO_BIG, f"message exceeds {self.max_size} bytes")
        fragments += payload
        if not fin:
            return None
        self._fragments = None
        return self._message(self._fragment_opcode, bytes(fragments))

    def _message(self, opcode: int, payload: bytes) -> Event:
        if self._compressed:
            payload = self.deflate.inflate(payload, self.max_size)  # type: ignore[union-attr]
        if opcode == OP_TEXT:
            try:
                return Event(opcode, text=payload.decode("utf-8"))
            except UnicodeDecodeError:
                raise FrameError(CLOSE_INVALID_DATA, "text frame is not valid UTF-8") from None
        return Event(opcode, payload)


class Deflate:
    """``permessage-deflate`` for one connection, as negotiated by :meth:`negotiate`."""

    def __init__(self, server_no_context_takeover: bool, client_no_context_takeover: bool) -> None:
        self.server_reset = server_no_context_takeover
        self.client_reset = client_no_context_takeover
        self._compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        self._decompressor = zlib.decompressobj(-15)

    @classmethod
    def negotiate(cls, offer: str | None) -> tuple[Deflate, str] | None:
        """Accept the client's first ``permessage-deflate`` offer we can honour.

        Returns the compressor and the ``Sec-WebSocket-Extensions`` response, or None.
        """
        for extension in (offer or "").split(","):
            name, *params = (part.strip() for part in extension.split(";"))
            if name != "permessage-deflate":
                continue
            keys = {p.split("=", 1)[0].strip() for p in params if p}
            if keys - {
                "server_no_context_takeover",
                "client_no_context_takeover",
                "client_max_window_bits",
            } or any(p.startswith("client_max_window_bits=") for p in params):
                continue  # window sizes other than the default: decline this offer
            response = ["permessage-deflate"]
            server_reset = "server_no_context_takeover" in keys
            client_reset = "client_no_context_takeover" in keys
            if server_reset:
                response.append("server_no_context_takeover")
            if client_reset:
                response.append("client_no_context_takeover")
            return cls(server_reset, client_reset), "; ".join(response)
        return None

    def deflate(self, payload: bytes) -> bytes:
        data = self._compressor.compress(payload) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        if self.server_reset:
            self._compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        return data[:-4] if data.endswith(_DEFLATE_TAIL) else data

    def inflate(self, payload: bytes, limit: int) -> bytes:
        try:
            data = self._decompressor.decompress(payload + _DEFLATE_TAIL, limit + 1)
        except zlib.error as exc:
            raise FrameError(CLOSE_INVALID_DATA, f"bad compressed data: {exc}") from None
        if len(data) > limit or self._decompressor.unconsumed_tail:
            raise FrameError(CLOSE_TOO_BIG, f"message inflates beyond {limit} bytes")
        if self.client_reset:
            self._decompressor = zlib.decompressobj(-15)
        return data
