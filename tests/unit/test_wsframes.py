"""WebSocket framing without I/O (RFC 6455, RFC 7692): bytes in, events out, frames built.

Client frames are built here by hand (:func:`client_frame`) and, where a reference helps, by the
``websockets`` library's own sans-I/O frame and permessage-deflate code.
"""

from __future__ import annotations

import itertools
import os
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode

from squall.wsframes import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Deflate,
    Event,
    FrameError,
    FrameParser,
    accept_key,
    close_payload,
    encode,
    parse_close,
)

OP_CONT = 0x0
MASK = b"\x37\xfa\x21\x3d"
LIMIT = 1024


def client_frame(
    opcode: int,
    payload: bytes = b"",
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = MASK,
    length: int | None = None,
) -> bytes:
    """A client frame; ``length`` overrides the declared payload length."""
    declared = len(payload) if length is None else length
    first = (0x80 if fin else 0) | rsv | opcode
    mask_bit = 0x80 if mask is not None else 0
    if declared < 126:
        header = struct.pack("!BB", first, mask_bit | declared)
    elif declared < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, declared)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, declared)
    if mask is None:
        return header + payload
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


def refused(parser: FrameParser, data: bytes) -> FrameError:
    with pytest.raises(FrameError) as caught:
        parser.feed(data)
    return caught.value


# -- handshake and building frames ------------------------------------------------------------


def test_accept_key_rfc_example():
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_encode_uses_the_shortest_length_form(size):
    payload = os.urandom(size)
    frame = encode(OP_BINARY, payload)

    header = {True: 2, False: 4}[size < 126] if size < 65536 else 10
    assert len(frame) == header + size
    assert frame[0] == 0x80 | OP_BINARY
    assert frame[header:] == payload


@pytest.mark.parametrize("size", [0, 125, 126, 65536])
def test_encode_is_read_back_by_a_reference_client(size):
    payload = b"x" * size
    frame = encode(OP_TEXT, payload)

    parsed = _parse_with_websockets(frame, mask=False)

    assert (parsed.opcode, parsed.data, parsed.fin, parsed.rsv1) == (
        Opcode.TEXT,
        payload,
        True,
        False,
    )


def test_encode_sets_rsv1_for_compressed_frames():
    assert encode(OP_TEXT, b"abc", rsv1=True)[0] == 0x80 | 0x40 | OP_TEXT


def test_close_payload_code_and_reason():
    assert close_payload(4000, "bye") == b"\x0f\xa0bye"
    assert parse_close(close_payload(1001, "going away")) == (1001, "going away")


def test_close_payload_reason_fits_a_control_frame_without_splitting_characters():
    payload = close_payload(1008, "é" * 100)

    assert len(payload) <= 125
    assert parse_close(payload) == (1008, "é" * 61)


def test_parse_close_without_code_is_1005():
    assert parse_close(b"") == (1005, "")


def test_parse_close_with_bad_utf8_reason_is_1007():
    with pytest.raises(FrameError) as caught:
        parse_close(b"\x03\xe8\xff")

    assert caught.value.code == 1007


@pytest.mark.parametrize("payload", [b"\x03", b"\x03\xed", b"\x03\xee", b"\x03\xf7", b"\x03\xe7"])
def test_parse_close_with_a_one_byte_body_or_reserved_code_is_1002(payload):
    """1005, 1006 and 1015 are never sent; 999 is below the range; a lone byte is no code."""
    with pytest.raises(FrameError) as caught:
        parse_close(payload)

    assert caught.value.code == 1002


def test_parse_close_with_an_application_code_is_accepted():
    assert parse_close(b"\x0f\xa0bye") == (4000, "bye")


# -- parsing ----------------------------------------------------------------------------------


def test_feed_text_frame():
    assert FrameParser(LIMIT).feed(client_frame(OP_TEXT, "héllo".encode())) == [
        Event(OP_TEXT, text="héllo")
    ]


def test_feed_binary_frame():
    assert FrameParser(LIMIT).feed(client_frame(OP_BINARY, b"\x00\xff")) == [
        Event(OP_BINARY, data=b"\x00\xff")
    ]


def test_feed_frame_from_a_reference_client():
    frame = Frame(Opcode.TEXT, "ünïcode 🚀".encode()).serialize(mask=True)

    assert FrameParser(LIMIT).feed(frame) == [Event(OP_TEXT, text="ünïcode 🚀")]


def test_feed_zero_mask():
    frame = client_frame(OP_TEXT, b"plain", mask=b"\x00\x00\x00\x00")

    assert FrameParser(LIMIT).feed(frame) == [Event(OP_TEXT, text="plain")]


@pytest.mark.parametrize("size", [125, 126, 1000])
def test_feed_byte_by_byte_waits_for_the_whole_frame(size):
    parser = FrameParser(LIMIT)
    frame = client_frame(OP_BINARY, bytes(range(256)) * 4 + b"", length=None)[:0] or client_frame(
        OP_BINARY, b"z" * size
    )

    events = [parser.feed(frame[i : i + 1]) for i in range(len(frame))]

    assert events[:-1] == [[]] * (len(frame) - 1)
    assert events[-1] == [Event(OP_BINARY, data=b"z" * size)]


def test_feed_several_frames_at_once():
    data = client_frame(OP_TEXT, b"a") + client_frame(OP_PING, b"p") + client_frame(OP_TEXT, b"b")

    assert FrameParser(LIMIT).feed(data) == [
        Event(OP_TEXT, text="a"),
        Event(OP_PING, data=b"p"),
        Event(OP_TEXT, text="b"),
    ]


def test_feed_keeps_a_partial_frame_after_complete_ones():
    parser = FrameParser(LIMIT)
    second = client_frame(OP_TEXT, b"second")

    assert parser.feed(client_frame(OP_TEXT, b"first") + second[:3]) == [
        Event(OP_TEXT, text="first")
    ]
    assert parser.feed(second[3:]) == [Event(OP_TEXT, text="second")]


@pytest.mark.parametrize(
    ("opcode", "payload"),
    [(OP_PING, b"ping!"), (OP_PONG, b""), (OP_CLOSE, b"\x03\xe8done")],
)
def test_feed_control_frames(opcode, payload):
    assert FrameParser(LIMIT).feed(client_frame(opcode, payload)) == [Event(opcode, data=payload)]


def test_feed_fragmented_message_with_a_ping_in_between():
    parser = FrameParser(LIMIT)
    data = (
        client_frame(OP_TEXT, b"he", fin=False)
        + client_frame(OP_PING, b"p")
        + client_frame(OP_CONT, b"ll", fin=False)
        + client_frame(OP_CONT, b"o", fin=True)
    )

    assert parser.feed(data) == [Event(OP_PING, data=b"p"), Event(OP_TEXT, text="hello")]


def test_feed_fragment_boundary_inside_a_utf8_character():
    parser = FrameParser(LIMIT)
    encoded = "é".encode()

    events = parser.feed(
        client_frame(OP_TEXT, encoded[:1], fin=False) + client_frame(OP_CONT, encoded[1:])
    )

    assert events == [Event(OP_TEXT, text="é")]


def test_feed_parser_is_reusable_after_a_fragmented_message():
    parser = FrameParser(LIMIT)
    parser.feed(client_frame(OP_BINARY, b"a", fin=False) + client_frame(OP_CONT, b"b"))

    assert parser.feed(client_frame(OP_TEXT, b"next")) == [Event(OP_TEXT, text="next")]


# -- protocol violations ------------------------------------------------------------------------


def test_unmasked_client_frame_is_1002():
    error = refused(FrameParser(LIMIT), client_frame(OP_TEXT, b"hi", mask=None))

    assert (error.code, error.reason) == (1002, "client frames must be masked")


def test_frame_over_the_limit_is_1009_before_its_payload_arrives():
    header_only = client_frame(OP_BINARY, b"", length=LIMIT + 1)[:-4] + MASK

    error = refused(FrameParser(LIMIT), header_only[:4])

    assert (error.code, error.reason) == (1009, f"frame of {LIMIT + 1} bytes exceeds {LIMIT}")


def test_frame_with_a_64_bit_length_is_1009():
    header = struct.pack("!BBQ", 0x80 | OP_BINARY, 0x80 | 127, 2**63 - 1)

    assert refused(FrameParser(LIMIT), header).code == 1009


@pytest.mark.parametrize("rsv", [0x20, 0x10, 0x30, 0x40])
def test_reserved_bits_without_an_extension_are_1002(rsv):
    error = refused(FrameParser(LIMIT), client_frame(OP_TEXT, b"x", rsv=rsv))

    assert (error.code, error.reason) == (1002, "reserved bits set without an extension")


def test_fragmented_control_frame_is_1002():
    error = refused(FrameParser(LIMIT), client_frame(OP_PING, b"x", fin=False))

    assert (error.code, error.reason) == (1002, "invalid control frame")


def test_control_frame_over_125_bytes_is_1002():
    error = refused(FrameParser(LIMIT), client_frame(OP_PING, b"x" * 126))

    assert (error.code, error.reason) == (1002, "invalid control frame")


def test_continuation_without_a_message_is_1002():
    error = refused(FrameParser(LIMIT), client_frame(OP_CONT, b"x"))

    assert (error.code, error.reason) == (1002, "unexpected opcode 0")


@pytest.mark.parametrize("opcode", [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcodes_are_1002(opcode):
    error = refused(FrameParser(LIMIT), client_frame(opcode, b"x"))

    assert (error.code, error.reason) == (1002, f"unexpected opcode {opcode}")


def test_new_message_inside_a_fragmented_one_is_1002():
    parser = FrameParser(LIMIT)
    parser.feed(client_frame(OP_TEXT, b"a", fin=False))

    error = refused(parser, client_frame(OP_TEXT, b"b"))

    assert (error.code, error.reason) == (1002, "a new message began inside a fragmented one")


def test_fragmented_message_over_the_limit_is_1009():
    parser = FrameParser(LIMIT)
    parser.feed(client_frame(OP_BINARY, b"a" * 600, fin=False))

    error = refused(parser, client_frame(OP_CONT, b"b" * 600))

    assert (error.code, error.reason) == (1009, f"message exceeds {LIMIT} bytes")


@pytest.mark.parametrize("payload", [b"\xff", b"\xc3", b"abc\xed\xa0\x80", b"\xf4\x90\x80\x80"])
def test_invalid_utf8_text_is_1007(payload):
    error = refused(FrameParser(LIMIT), client_frame(OP_TEXT, payload))

    assert (error.code, error.reason) == (1007, "text frame is not valid UTF-8")


def test_binary_frame_may_hold_any_bytes():
    assert FrameParser(LIMIT).feed(client_frame(OP_BINARY, b"\xff\xfe")) == [
        Event(OP_BINARY, data=b"\xff\xfe")
    ]


# -- permessage-deflate -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offer", "response"),
    [
        ("permessage-deflate", "permessage-deflate"),
        ("permessage-deflate; client_max_window_bits", "permessage-deflate"),
        (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ),
        (
            "permessage-deflate; server_max_window_bits=10, permessage-deflate",
            "permessage-deflate",
        ),
    ],
)
def test_deflate_negotiate_accepts(offer, response):
    negotiated = Deflate.negotiate(offer)

    assert negotiated is not None
    assert negotiated[1] == response


@pytest.mark.parametrize(
    "offer",
    [
        None,
        "",
        "x-webkit-deflate-frame",
        "permessage-deflate; client_max_window_bits=10",
        "permessage-deflate; server_max_window_bits=9",
        "permessage-deflate; unknown_param",
    ],
)
def test_deflate_negotiate_declines(offer):
    assert Deflate.negotiate(offer) is None


def reference_client(server_reset: bool = False, client_reset: bool = False) -> PerMessageDeflate:
    """The client end of the negotiated extension, from the websockets library."""
    return PerMessageDeflate(
        remote_no_context_takeover=server_reset,
        local_no_context_takeover=client_reset,
        remote_max_window_bits=15,
        local_max_window_bits=15,
    )


def compressed_client_frame(client: PerMessageDeflate, text: str) -> bytes:
    frame = client.encode(Frame(Opcode.TEXT, text.encode()))
    return client_frame(OP_TEXT, frame.data, rsv=0x40 if frame.rsv1 else 0)


@pytest.mark.parametrize("client_reset", [False, True])
def test_deflate_inflates_a_reference_clients_messages(client_reset):
    deflate, _ = Deflate.negotiate(
        "permessage-deflate" + ("; client_no_context_takeover" if client_reset else "")
    )
    client = reference_client(client_reset=client_reset)
    parser = FrameParser(LIMIT * 64, deflate)
    messages = ["hello " * 50, "hello " * 50, "something else", ""]

    events = [parser.feed(compressed_client_frame(client, text)) for text in messages]

    assert events == [[Event(OP_TEXT, text=text)] for text in messages]


@pytest.mark.parametrize("server_reset", [False, True])
def test_deflate_output_is_read_by_a_reference_client(server_reset):
    offer = "permessage-deflate" + ("; server_no_context_takeover" if server_reset else "")
    deflate, _ = Deflate.negotiate(offer)
    client = reference_client(server_reset=server_reset)

    for text in ["abc" * 100, "abc" * 100, "é🚀", ""]:
        frame = encode(OP_TEXT, deflate.deflate(text.encode()), rsv1=True)
        parsed = _parse_with_websockets(frame, mask=False, extensions=[client])
        assert parsed.data.decode() == text


def test_deflate_bomb_is_1009():
    deflate, _ = Deflate.negotiate("permessage-deflate")
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = bomb.compress(b"\x00" * (LIMIT * 100)) + bomb.flush(zlib.Z_SYNC_FLUSH)
    frame = client_frame(OP_BINARY, data[:-4], rsv=0x40)

    error = refused(FrameParser(LIMIT, deflate), frame)

    assert (error.code, error.reason) == (1009, f"message inflates beyond {LIMIT} bytes")


def test_deflate_garbage_is_1007():
    deflate, _ = Deflate.negotiate("permessage-deflate")

    error = refused(
        FrameParser(LIMIT, deflate), client_frame(OP_TEXT, b"\xff\xff\xff\xff", rsv=0x40)
    )

    assert error.code == 1007
    assert error.reason.startswith("bad compressed data: ")


def test_deflate_rsv1_on_a_control_frame_is_1002():
    deflate, _ = Deflate.negotiate("permessage-deflate")

    error = refused(FrameParser(LIMIT, deflate), client_frame(OP_PING, b"", rsv=0x40))

    assert error.code == 1002


def test_deflate_rsv1_on_a_continuation_frame_is_1002():
    """RFC 7692 §6.1: RSV1 is set on the first frame of a message only."""
    deflate, _ = Deflate.negotiate("permessage-deflate")
    parser = FrameParser(LIMIT, deflate)
    parser.feed(client_frame(OP_TEXT, b"a", fin=False))

    error = refused(parser, client_frame(OP_CONT, b"b", rsv=0x40))

    assert error.code == 1002


def test_deflate_uncompressed_message_passes_through():
    deflate, _ = Deflate.negotiate("permessage-deflate")

    assert FrameParser(LIMIT, deflate).feed(client_frame(OP_TEXT, b"raw")) == [
        Event(OP_TEXT, text="raw")
    ]


# -- properties -----------------------------------------------------------------------------------

FRAMES = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FRAMES
@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=5))
def test_feed_any_bytes_gives_events_or_frame_error(data, cuts):
    parser = FrameParser(LIMIT)
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    try:
        for start, end in itertools.pairwise(bounds):
            for event in parser.feed(data[start:end]):
                assert isinstance(event, Event)
    except FrameError as error:
        assert error.code in (1002, 1007, 1009)


@FRAMES
@given(
    opcode=st.sampled_from([Opcode.TEXT, Opcode.BINARY]),
    text=st.text(max_size=300),
    pieces=st.integers(1, 5),
    chunk=st.integers(1, 64),
)
def test_feed_reference_client_messages_round_trip(opcode, text, pieces, chunk):
    payload = text.encode()
    step = max(1, len(payload) // pieces)
    parts = [payload[i : i + step] for i in range(0, len(payload), step)] or [b""]
    frames = b"".join(
        Frame(opcode if index == 0 else Opcode.CONT, part, fin=index == len(parts) - 1).serialize(
            mask=True
        )
        for index, part in enumerate(parts)
    )
    parser = FrameParser(LIMIT * 4)

    events = []
    for start in range(0, len(frames), chunk):
        events.extend(parser.feed(frames[start : start + chunk]))

    expected = (
        Event(OP_TEXT, text=text) if opcode is Opcode.TEXT else Event(OP_BINARY, data=payload)
    )
    assert events == [expected]


def _parse_with_websockets(data: bytes, mask: bool, extensions=None) -> Frame:
    """Read one frame with the websockets library's sans-I/O parser."""
    position = 0

    def read_exact(n: int):
        nonlocal position
        chunk = data[position : position + n]
        position += n
        return chunk
        yield  # a generator, as websockets expects

    parser = Frame.parse(read_exact, mask=mask, extensions=extensions)
    try:
        next(parser)
    except StopIteration as done:
        return done.value
    raise AssertionError("frame incomplete")
