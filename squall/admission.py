"""How many sockets one client address holds: ``servers.websocket.server.maxConnectionsPerAddress``.

``maxConnections`` bounds the server; this bounds one address, so a single client cannot take
every place (one address opening 300 sockets would otherwise lock everyone else out). The
transport counts an upgrade from the moment it is admitted (so a burst of upgrades cannot all
pass before any is counted) and a socket for as long as it is open; an address is forgotten
when its count drops to zero.

Behind a reverse proxy every client has the proxy's address unless ``servers.web.trustProxy``
takes it from ``X-Forwarded-For``.
"""

from __future__ import annotations

__all__ = ["AddressCounts"]


class AddressCounts:
    """Upgrades under way and open sockets, per remote address.

    Args:
        limit: the most one address may hold; None: no bound (counts are still kept).
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._counts: dict[str, int] = {}

    def admit(self, address: str) -> bool:
        """Count an upgrade from ``address``, unless it holds ``limit`` already (False)."""
        held = self._counts.get(address, 0)
        if self.limit is not None and held >= self.limit:
            return False
        self._counts[address] = held + 1
        return True

    def add(self, address: str) -> None:
        """Count an open socket (its upgrade was admitted)."""
        self._counts[address] = self._counts.get(address, 0) + 1

    def release(self, address: str) -> None:
        """An upgrade ended or a socket closed."""
        held = self._counts.get(address, 0)
        if held > 1:
            self._counts[address] = held - 1
        else:
            self._counts.pop(address, None)

    def held(self, address: str) -> int:
        return self._counts.get(address, 0)

    def __len__(self) -> int:
        """How many addresses hold at least one upgrade or socket."""
        return len(self._counts)
