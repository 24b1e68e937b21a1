"""Sockets per client address (servers.websocket.server.maxConnectionsPerAddress)."""

from __future__ import annotations

from squall.admission import AddressCounts


def test_an_address_is_admitted_up_to_the_limit_then_refused():
    counts = AddressCounts(2)

    assert [counts.admit("10.0.0.1") for _ in range(3)] == [True, True, False]
    assert counts.admit("10.0.0.2") is True
    assert (counts.held("10.0.0.1"), counts.held("10.0.0.2")) == (2, 1)


def test_an_upgrade_becoming_a_socket_keeps_its_place_and_a_close_frees_it():
    counts = AddressCounts(1)
    assert counts.admit("10.0.0.1")
    counts.add("10.0.0.1")  # the socket opened ...
    counts.release("10.0.0.1")  # ... and the upgrade's hold ended

    assert counts.admit("10.0.0.1") is False
    counts.release("10.0.0.1")  # the socket closed
    assert counts.admit("10.0.0.1") is True


def test_addresses_are_forgotten_at_zero():
    counts = AddressCounts(None)
    for _ in range(1000):
        assert counts.admit("10.0.0.1")
    for _ in range(1000):
        counts.release("10.0.0.1")

    assert len(counts) == 0
    counts.release("10.0.0.9")  # a release of an unknown address changes nothing
    assert len(counts) == 0
