"""Test-only chat middleware for the cluster tier, loaded only by the servers of the middleware
test (a ``say`` hook takes every room off the encode-once path). It works on rooms named
``mw-*`` and marks where each hook ran with the server's pid (its default id ends with it)."""

import os

from squall import ChatMiddleware


def _on_say_receive(connection, room, payload):
    if not room.startswith("mw-"):
        return payload
    if payload["message"] == "drop me":
        return None
    return {**payload, "saidOn": os.getpid()}


def _say(connection, room, payload):
    if not room.startswith("mw-"):
        return payload
    if payload["message"] == f"not for {connection.id}":
        return None
    return {**payload, "deliveredBy": [*payload.get("deliveredBy", []), os.getpid()]}


cluster_chat = ChatMiddleware(name="clusterChat", on_say_receive=_on_say_receive, say=_say)
