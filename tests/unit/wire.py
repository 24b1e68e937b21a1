"""A transport without a socket for the protocols of ``handlers/`` (HTTP/1.1 and the WebSocket
pump): bytes in with :meth:`WireTransport.receive`, every byte written kept, flow control and
closing as asyncio's socket transport does them. Waiting is on its ``changed`` event."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from testkit import TIMEOUT

PEER = ("203.0.113.7", 50123)


class WireTransport(asyncio.Transport):
    """What asyncio's socket transport does, minus the socket: every byte written is kept, and
    ``pause_writing``/``resume_writing`` are called at a high-water mark as asyncio would."""

    def __init__(self, *, secure: bool = False, high_water: int | None = None) -> None:
        super().__init__()
        self.written = bytearray()
        self.writes: list[bytes] = []  # each write's object, to tell one shared frame from copies
        self.secure = secure
        self.high_water = high_water
        self.buffered = 0  # written but not yet "sent" (see drain)
        self.reading = True
        self.inbox: list[bytes] = []
        self.eof = False
        self.closing = False
        self.aborted = False
        self.lost = False  # connection_lost was called
        self.protocol: Any = None
        self.changed = asyncio.Event()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return PEER
        if name == "sslcontext":
            return object() if self.secure else None
        return default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.eof, "written after write_eof"
        self.written += data
        self.writes.append(data)
        self.buffered += len(data)
        self.changed.set()
        if self.high_water is not None and self.buffered > self.high_water:
            self.protocol.pause_writing()

    def drain(self) -> None:
        """The peer read everything: the protocol may write again."""
        self.buffered = 0
        self.protocol.resume_writing()

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self._lose(None)

    def abort(self) -> None:
        self.aborted = True
        self._lose(None)

    def peer_left(self) -> None:
        """The client reset the connection."""
        self._lose(ConnectionResetError("reset by peer"))

    def _lose(self, exc: Exception | None) -> None:
        if not self.closing:
            self.closing = True
            self.changed.set()
            asyncio.get_running_loop().call_soon(self._lost, exc)

    def _lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.protocol.connection_lost(exc)
        self.changed.set()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True
        self.changed.set()

    def receive(self, data: bytes) -> None:
        """Bytes from the client: handed over now, or kept (as the kernel would) while the
        protocol paused reading."""
        self.inbox.append(data)
        if self.reading and len(self.inbox) == 1:
            self._hand_over()

    def _hand_over(self) -> None:
        while self.reading and self.inbox and not self.closing:
            self.protocol.data_received(self.inbox.pop(0))

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True
        asyncio.get_running_loop().call_soon(self._hand_over)

    def is_reading(self) -> bool:
        return self.reading

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.protocol


async def until(condition: Callable[[], Any], *events: asyncio.Event) -> None:
    """Wait until ``condition()`` holds, waking whenever one of ``events`` is set (at most
    ``testkit.TIMEOUT`` seconds)."""
    async with asyncio.timeout(TIMEOUT):
        while not condition():
            for event in events:
                event.clear()
            waiters = [asyncio.ensure_future(event.wait()) for event in events]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
