"""The browser client (``actionheroClient.js``) and its rendering into ``public/``."""

from .render import render_client

__all__ = ["render_client"]
