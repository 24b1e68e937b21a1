"""Test-only chat and connection middleware, each gated on a room name or fingerprint so the
rest of the suite never meets it."""

import os

from squall import ChatMiddleware, ConnectionMiddleware


def _record(line):
    """Append to the event log the test harness reads (SQUALL_TEST_EVENT_LOG)."""
    with open(os.environ["SQUALL_TEST_EVENT_LOG"], "a") as log:
        log.write(line + "\n")


def _join(connection, room):
    if room == "mw-blocked":
        raise PermissionError("this room is closed to you")
    if room.startswith("presence-"):  # the member's public info (PROTOCOL.md §8)
        return {"name": connection.session.get("name", "guest")}
    return None


def _leave(connection, room):
    if room == "mw-sticky":
        raise PermissionError("you cannot leave this room")
    if room.startswith("notify-"):
        _record(f"leave {connection.id} {room}")


def _on_say_receive(connection, room, payload):
    if room != "mw-chat":
        return payload
    if payload["message"] == "drop me":
        return None
    if payload["message"] == "refuse me":
        raise PermissionError("that message is not allowed")
    return {**payload, "message": payload["message"].upper()}


def _say(connection, room, payload):
    if room != "mw-chat":
        return payload
    return {**payload, "to": connection.id}


chat_probe = ChatMiddleware(
    name="integrationChat", join=_join, leave=_leave, on_say_receive=_on_say_receive, say=_say
)


def _tag(tag):
    def on_say_receive(connection, room, payload):
        if room != "mw-order":
            return payload
        return {**payload, "message": f"{payload['message']}|{tag}"}

    return on_say_receive


# Declared late-first on purpose: priority, not declaration order, decides who runs first.
order_late = ChatMiddleware(name="integrationLate", on_say_receive=_tag("late"), priority=150)
order_early = ChatMiddleware(name="integrationEarly", on_say_receive=_tag("early"), priority=50)
order_default = ChatMiddleware(name="integrationDefault", on_say_receive=_tag("default"))


def _create(connection):
    if connection.fingerprint == "reject-me":
        raise PermissionError("you are not welcome here")


def _destroy(connection):
    _record(f"destroy {connection.id}")


connection_probe = ConnectionMiddleware(
    name="integrationConnection", create=_create, destroy=_destroy
)
