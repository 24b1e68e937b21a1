"""Connections and the registry of live ones: identity, pushes, destroy, exact counts."""

from __future__ import annotations

import logging
import uuid

from squall.connections import CLOSE_DESTROYED, Connection, ConnectionRegistry, new_id
from squall.fingerprints import valid_fingerprint

from .conftest import socket_connection, transport_of


def test_connection_defaults():
    connection = Connection("webSocket", "10.0.0.1", 4242)

    assert uuid.UUID(connection.id).version == 4
    assert valid_fingerprint(connection.fingerprint) and connection.fingerprint != connection.id
    assert (connection.rooms, connection.params, connection.session) == ([], {}, {})
    assert (connection.total_actions, connection.pending_actions, connection.message_count) == (
        0,
        0,
        0,
    )
    assert connection.closed is False
    assert repr(connection) == f"<Connection webSocket {connection.id} from 10.0.0.1:4242>"


def test_connection_ids_are_random_uuid4_text():
    ids = [new_id() for _ in range(1000)]

    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text  # lower-case hex, dashes where str(uuid4()) puts them
    assert len(set(ids)) == len(ids)


def test_connection_fingerprint_given():
    connection = Connection("web", "10.0.0.1", 1, fingerprint="cookie-value", connection_id="c1")

    assert (connection.id, connection.fingerprint) == ("c1", "cookie-value")


def test_connection_details():
    connection = socket_connection("c1", fingerprint="fp")
    connection.rooms.append("lobby")
    connection.total_actions = 3

    assert connection.details() == {
        "id": "c1",
        "fingerprint": "fp",
        "type": "webSocket",
        "remoteIP": "127.0.0.1",
        "remotePort": 50000,
        "params": {},
        "connectedAt": connection.connected_at,
        "rooms": ["lobby"],
        "totalActions": 3,
        "pendingActions": 0,
    }


def test_connection_details_are_copies():
    connection = socket_connection("c1")

    connection.details()["rooms"].append("x")

    assert connection.rooms == []


def test_connection_send_writes_one_encoded_frame():
    connection = socket_connection()

    connection.send({"a": [1, "é"]})

    assert transport_of(connection).frames == ['{"a":[1,"é"]}'.encode()]


def test_connection_send_encoded_passes_bytes_through():
    connection = socket_connection()
    frame = b'{"x":1}'

    connection.send_encoded(frame)

    assert transport_of(connection).frames[0] is frame


def test_connection_send_after_close_is_dropped():
    connection = socket_connection()
    connection.closed = True

    connection.send({"late": True})

    assert transport_of(connection).frames == []


def test_http_connection_send_is_dropped_and_logged_at_debug(caplog):
    connection = Connection("web", "127.0.0.1", 1, connection_id="w1")

    with caplog.at_level(logging.DEBUG, "squall.connections"):
        connection.send({"x": 1})

    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "dropped a push to HTTP connection w1: it has no socket")
    ]


def test_connection_destroy_closes_with_4000_and_notifies():
    connection = socket_connection()
    notified = []
    connection.on_destroy = notified.append

    connection.destroy()

    assert CLOSE_DESTROYED == 4000
    assert transport_of(connection).closes == [(4000, "connection destroyed")]
    assert notified == [connection]


def test_connection_destroy_after_close_does_nothing():
    connection = socket_connection()
    connection.closed = True
    notified = []
    connection.on_destroy = notified.append

    connection.destroy()

    assert transport_of(connection).closes == []
    assert notified == []


def test_http_connection_destroy_only_notifies():
    connection = Connection("web", "127.0.0.1", 1)
    notified = []
    connection.on_destroy = notified.append

    connection.destroy()

    assert notified == [connection]


# -- registry -------------------------------------------------------------------------------


def test_registry_add_get_contains_iter():
    registry = ConnectionRegistry()
    first, second = socket_connection("a"), socket_connection("b")

    registry.add(first)
    registry.add(second)

    assert registry.get("a") is first
    assert registry.get("zz") is None
    assert "b" in registry
    assert "zz" not in registry
    assert list(registry) == [first, second]
    assert len(registry) == 2


def test_registry_counts_by_type():
    registry = ConnectionRegistry()
    for connection in (
        socket_connection("s1"),
        socket_connection("s2"),
        Connection("web", "127.0.0.1", 1, connection_id="w1"),
    ):
        registry.add(connection)

    assert registry.counts() == {"total": 3, "webSocket": 2, "web": 1}
    assert (registry.count("webSocket"), registry.count("web"), registry.count("other")) == (
        2,
        1,
        0,
    )


def test_registry_add_twice_counts_once():
    registry = ConnectionRegistry()
    connection = socket_connection("a")

    registry.add(connection)
    registry.add(connection)

    assert registry.counts() == {"total": 1, "webSocket": 1}


def test_registry_remove_is_exact_and_idempotent():
    registry = ConnectionRegistry()
    connection = socket_connection("a")
    registry.add(connection)

    registry.remove(connection)
    registry.remove(connection)

    assert len(registry) == 0
    assert registry.counts() == {"total": 0, "webSocket": 0}


def test_registry_remove_of_another_object_with_the_same_id_is_ignored():
    registry = ConnectionRegistry()
    live = socket_connection("a")
    registry.add(live)

    registry.remove(socket_connection("a"))

    assert registry.get("a") is live
    assert registry.counts() == {"total": 1, "webSocket": 1}


def test_registry_iteration_survives_removal_during_it():
    registry = ConnectionRegistry()
    for name in "abc":
        registry.add(socket_connection(name))

    for connection in registry:
        registry.remove(connection)

    assert len(registry) == 0
