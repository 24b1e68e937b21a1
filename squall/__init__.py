"""Squall: an ActionHero-style application server for Python, built on Tornado.

Declare actions and middleware in drop-in files under ``actions/``::

    from squall import action, Input

    @action(description="Say hello", inputs={"name": Input(default="world")})
    async def hello(data):
        return {"greeting": f"Hello, {data.params['name']}!"}

and ``python server.py`` serves them over HTTP (``/api/hello``) and WebSocket. Raise
:class:`ActionError` or one of its kinds (``NotFound("no such invoice")``, ``Forbidden(...)``) to
answer with an error and its HTTP status (PROTOCOL.md §3).
"""

from .actions import Action, Input, action
from .app import Squall
from .config import Config, load_config
from .connections import Connection
from .errors import (
    ActionError,
    BadRequest,
    ClientError,
    ConfigError,
    Conflict,
    Forbidden,
    InvalidParams,
    NotFound,
    SquallError,
    TooManyRequests,
    Unauthorized,
)
from .initializers import Initializer
from .middleware import ActionMiddleware, ChatMiddleware, ConnectionMiddleware
from .processor import ActionData

__all__ = [
    "Action",
    "ActionData",
    "ActionError",
    "ActionMiddleware",
    "BadRequest",
    "ChatMiddleware",
    "ClientError",
    "Config",
    "ConfigError",
    "Conflict",
    "Connection",
    "ConnectionMiddleware",
    "Forbidden",
    "Initializer",
    "Input",
    "InvalidParams",
    "NotFound",
    "Squall",
    "SquallError",
    "TooManyRequests",
    "Unauthorized",
    "action",
    "load_config",
]
