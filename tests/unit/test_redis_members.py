"""How a membership is kept in a room's Redis hash, and read back (PROTOCOL.md §8: info)."""

from __future__ import annotations

import pytest

from squall.broker import Member
from squall.redis_members import MemberStore, parse_member


@pytest.mark.parametrize("info", [None, {"name": "Ada", "seat": 3}])
def test_a_membership_is_read_back_as_it_was_written(info):
    store = MemberStore("c", "server-1", lease_ms=1000, token=b"c|")

    assert parse_member(store.member_value(1_700_000_000_000, info)) == Member(
        1_700_000_000_000, info
    )


@pytest.mark.parametrize(
    ("value", "member"),
    [(b"old-host-12|1700000000000", Member(1_700_000_000_000)), (b"a|b|", Member(0))],
)
def test_a_membership_written_by_a_server_older_than_presence_is_read(value, member):
    """A rolling upgrade meets ``<server id>|<joinedAt>`` values for a while."""
    assert parse_member(value) == member
