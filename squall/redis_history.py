"""Rooms' histories in Redis: numbered, kept and published in one round trip (PROTOCOL.md §9).

Per room with a history (``<c>`` is the cluster name):

- ``<c>:historyMeta:<room>``  HASH ``epoch`` (the numbering's name) and ``top`` (the last offset);
- ``<c>:history:<room>``      STREAM of the kept messages: entry id ``<offset>-1``, fields ``t``
  (when it was said, Redis' clock, ms) and ``f`` (the frame as members got it).

A say is one script (:data:`SAY`): it takes the next offset, splices ``"offset"`` and
``"epoch"`` into the frame the server encoded once, appends it to the stream trimmed to the
room's ``size`` (``MAXLEN``), and publishes the very same bytes to the room's channel. Numbering,
keeping and publishing happen at once, so the order of offsets is the order members receive
them on every server, and a message is never kept without being sent or the other way round.

A read is one script too (:data:`READ`): the epoch, the top offset and the kept messages after
an offset (or the last few), expired ones (older than ``ttl``) left out; the stream also expires
as a whole ``ttl`` after its last message. Any server reads any room, so a client recovers
wherever it reconnects. When Redis loses its data (a restart without persistence) the meta hash
goes with it: the next say or read makes a new epoch, and clients of the old one are told
``recovered: false``.
"""

from __future__ import annotations

from typing import Any

from .history import Kept, Recovery, new_epoch, recover
from .room_options import RoomOptions

__all__ = ["RedisHistory"]

# The room's epoch, made from ARGV[n] when it has none yet; then Redis' clock in ms.
_EPOCH_AND_NOW = r"""
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[EPOCH]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

#: KEYS: meta, stream. ARGV: channel, token, frame without its closing brace, size, ttl ms,
#: a new epoch. Returns the offset given.
SAY = (
    _EPOCH_AND_NOW.replace("ARGV[EPOCH]", "ARGV[6]")
    + r"""
local offset = redis.call('HINCRBY', KEYS[1], 'top', 1)
local frame = ARGV[3] .. ',"offset":' .. offset .. ',"epoch":"' .. epoch .. '"}'
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], offset .. '-1', 't', now, 'f', frame)
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('PUBLISH', ARGV[1], ARGV[2] .. frame)
return offset
"""
)

#: KEYS: meta, stream. ARGV: "since" or "last", the offset after which to read (since), or how
#: many (last), ttl ms, a new epoch, the epoch the reader knows (since). Returns {epoch, top,
#: offset, frame, offset, frame...}; a reader of another epoch gets every kept message.
READ = (
    _EPOCH_AND_NOW.replace("ARGV[EPOCH]", "ARGV[4]")
    + r"""
local top = tonumber(redis.call('HGET', KEYS[1], 'top') or '0')
local entries
if ARGV[1] == 'since' then
  local after = tonumber(ARGV[2])
  if ARGV[5] ~= epoch then after = 0 end
  entries = redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', '+')
else
  entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[2])
end
local oldest = now - tonumber(ARGV[3])
local found = {epoch, top}
local first, last, step = 1, #entries, 1
if ARGV[1] ~= 'since' then first, last, step = #entries, 1, -1 end
for i = first, last, step do
  local id, fields = entries[i][1], entries[i][2]
  if tonumber(fields[2]) > oldest then
    found[#found + 1] = tonumber(string.match(id, '^(%d+)'))
    found[#found + 1] = fields[4]
  end
end
return found
"""
)


class RedisHistory:
    """Numbers, keeps and reads rooms' messages in Redis (see the module docstring).

    Args:
        cluster: the key prefix.
        token: what every published message starts with (the cluster's).
    """

    def __init__(self, cluster: str, token: bytes) -> None:
        self.cluster = cluster
        self.token = token
        self._say: Any = None
        self._read: Any = None

    def attach(self, redis: Any) -> None:
        """Use this client (a ``redis.asyncio.Redis``) from now on."""
        self._say = redis.register_script(SAY)
        self._read = redis.register_script(READ)

    def keys(self, room: str) -> list[str]:
        """The meta hash and the stream of ``room`` (deleted with the room)."""
        return [f"{self.cluster}:historyMeta:{room}", f"{self.cluster}:history:{room}"]

    async def say(self, room: str, channel: str, frame: bytes, options: RoomOptions) -> int:
        """Number ``frame`` (a JSON object, as encoded), keep it and publish it: its offset.

        Raises:
            RedisError, OSError: Redis did not answer; whether it was said is unknown.
        """
        args = [channel, self.token, frame[:-1], options.history_size, options.history_ttl]
        return int(await self._say(keys=self.keys(room), args=[*args, new_epoch()]))

    async def since(self, room: str, offset: int, epoch: str, options: RoomOptions) -> Recovery:
        """What a client that last saw ``offset`` of ``epoch`` missed."""
        args = ["since", offset, options.history_ttl, new_epoch(), epoch]
        current, top, kept = _parsed(await self._read(keys=self.keys(room), args=args))
        return recover(offset, epoch, current, top, kept)

    async def last(self, room: str, limit: int, options: RoomOptions) -> Kept:
        """The last ``limit`` kept messages of ``room``, oldest first."""
        args = ["last", limit, options.history_ttl, new_epoch()]
        current, top, kept = _parsed(await self._read(keys=self.keys(room), args=args))
        return Kept(current, top, [frame for _, frame in kept])


def _parsed(found: list[Any]) -> tuple[str, int, list[tuple[int, bytes]]]:
    epoch, top, *flat = found
    pairs = list(zip(flat[::2], flat[1::2], strict=True))
    return epoch.decode(), int(top), [(int(offset), frame) for offset, frame in pairs]
