"""Squall: an ActionHero-style application server for Python, built on Tornado.

Declare actions and middleware in drop-in files under ``actions/``::

    from squall import action, Input

    @action(description="Say hello", inputs={"name": Input(default="world")})
    async def hello(data):
        return {"greeting": f"Hello, {data.params['name']}!"}

and ``python server.py`` serves them over HTTP (``/api/hello``) and WebSocket.
"""

from .actions import Action, Input, action
from .app import Squall
from .config import Config, load_config
from .connections import Connection
from .errors import ClientError, ConfigError, SquallError
from .middleware import ActionMiddleware, ChatMiddleware, ConnectionMiddleware
from .processor import ActionData

__all__ = [
    "Action",
    "ActionData",
    "ActionMiddleware",
    "ChatMiddleware",
    "ClientError",
    "Config",
    "ConfigError",
    "Connection",
    "ConnectionMiddleware",
    "Input",
    "Squall",
    "SquallError",
    "action",
    "load_config",
]
