"""Typed application keys (aiohttp ``web.AppKey``): no string keys, no globals."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from switch.app import Services

    from .auth import Principal

SERVICES: web.AppKey["Services"] = web.AppKey("services")
#: bearer token -> (who it is, monotonic time the entry expires)
TOKEN_CACHE: web.AppKey[dict[str, tuple["Principal", float]]] = web.AppKey("token_cache")
