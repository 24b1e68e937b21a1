"""The floor: the least a Tornado WebSocket server can do for the benchmark's verbs.

No framework around it: the ``action`` verb (randomNumber, status, createChatRoom), ``roomAdd``,
``say`` fan-out, and GET /api/randomNumber and /api/status. It shows how much of Squall's cost is
Tornado itself: Squall should land near this, and where it is far above, the difference is ours.

Fan-out encodes the broadcast once and writes one prebuilt frame to each member's stream, the
cheapest thing Tornado allows; sockets get TCP_NODELAY (Tornado leaves Nagle on). uvloop and orjson
are used when installed. No access log. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import struct
import time
import uuid
from collections.abc import Callable
from typing import Any

import tornado.iostream
import tornado.web
import tornado.websocket

try:
    import orjson

    loads = orjson.loads
    dumps: Callable[[Any], bytes] = orjson.dumps
except ImportError:  # orjson is optional
    loads = json.loads

    def dumps(obj: Any) -> bytes:
        """JSON-encode to bytes."""
        return json.dumps(obj, separators=(",", ":")).encode()


BOOT = time.time()
ROOMS: dict[str, set[FloorSocket]] = {"defaultRoom": set()}
WELCOME = dumps({"welcome": "Welcome to the floor server", "context": "api"})


def random_number(params: dict) -> dict:
    """Same shape as ActionHero's benchmark action."""
    number = random.random()
    return {"randomNumber": number, "stringRandomNumber": f"Your random number is {number}"}


def status(params: dict) -> dict:
    """A small status document, like ActionHero's status action."""
    uptime = int((time.time() - BOOT) * 1000)
    return {"id": "floor", "uptime": uptime, "nodeStatus": "Node Healthy", "problems": []}


def create_chat_room(params: dict) -> dict:
    """Create the room if missing; report whether it did."""
    name = params.get("name")
    if not isinstance(name, str) or not name:
        return {"error": "name is a required parameter for this action"}
    created = name not in ROOMS
    ROOMS.setdefault(name, set())
    return {"name": name, "didCreate": created}


ACTIONS: dict[str, Callable[[dict], dict]] = {
    "randomNumber": random_number,
    "status": status,
    "createChatRoom": create_chat_room,
}


def text_frame(payload: bytes) -> bytes:
    """An unmasked server-to-client text frame (RFC 6455 5.2) around ``payload``."""
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", 0x81, n) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class FloorSocket(tornado.websocket.WebSocketHandler):
    """One client: welcome on open, the verbs above, membership cleanup on close."""

    def open(self) -> None:
        self.cid = uuid.uuid4().hex
        self.rooms: set[str] = set()
        self.set_nodelay(True)
        self.write_message(WELCOME)

    def reply(self, body: dict, message_id: Any) -> None:
        body["context"] = "response"
        body["messageId"] = message_id
        self.write_message(dumps(body))

    def on_message(self, raw: str | bytes) -> None:
        try:
            frame = loads(raw)
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            self.write_message(
                dumps({"context": "error", "error": "a frame must be a JSON object"})
            )
            return
        event, message_id = frame.get("event"), frame.get("messageId")
        if event == "action":
            params = frame.get("params") or {}
            action = ACTIONS.get(params.get("action"))
            body = action(params) if action else {"error": "unknown action or invalid apiVersion"}
            self.reply(body, message_id)
        elif event == "roomAdd":
            self.room_add(frame.get("room"), message_id)
        elif event == "say":
            self.say(frame.get("room"), frame.get("message"), message_id)
        else:
            error = f"verb not found or not allowed ({event})"
            self.reply({"status": error, "error": error}, message_id)

    def room_add(self, room: Any, message_id: Any) -> None:
        members = ROOMS.get(room)
        if members is None:
            error = "room does not exist"
        elif self in members:
            error = f"connection already in this room ({room})"
        else:
            members.add(self)
            self.rooms.add(room)
            self.reply({"status": "OK", "data": True}, message_id)
            return
        self.reply({"status": error, "error": error}, message_id)

    def say(self, room: Any, message: Any, message_id: Any) -> None:
        if room not in self.rooms:
            error = f"connection not in this room ({room})"
            self.reply({"status": error, "error": error}, message_id)
            return
        self.reply({"status": "OK"}, message_id)
        push = {
            "message": message,
            "room": room,
            "from": self.cid,
            "context": "user",
            "sentAt": int(time.time() * 1000),
        }
        frame = text_frame(dumps(push))
        for member in list(ROOMS[room]):
            try:
                member.ws_connection.stream.write(frame)
            except (tornado.iostream.StreamClosedError, AttributeError):
                ROOMS[room].discard(member)

    def on_close(self) -> None:
        for room in self.rooms:
            ROOMS.get(room, set()).discard(self)


class Api(tornado.web.RequestHandler):
    """GET /api/<action> for the same actions."""

    def get(self, name: str) -> None:
        action = ACTIONS.get(name)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        if action is None:
            self.set_status(404)
            self.finish(dumps({"error": "unknown action or invalid apiVersion"}))
        else:
            self.finish(dumps(action(dict(self.request.query_arguments))))


def make_app(path: str) -> tornado.web.Application:
    """The floor's routes; the access log is off (``log_function``) as in every measured server."""
    return tornado.web.Application(
        [(path, FloorSocket), (r"/api/(\w+)", Api)], log_function=lambda _h: None
    )


async def serve(port: int, path: str) -> None:
    """Listen on 127.0.0.1:``port`` until killed."""
    make_app(path).listen(port, address="127.0.0.1")
    print(f"floor on 127.0.0.1:{port}{path}", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    """``python -m bench floor --port N``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench floor", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--path", default="/primus")
    args = parser.parse_args(argv)
    try:
        from uvloop import run
    except ImportError:
        run = asyncio.run
    run(serve(args.port, args.path))
