"""Typed application keys (aiohttp ``web.AppKey``): no string keys, no globals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from switch.app import Services

SERVICES: web.AppKey["Services"] = web.AppKey("services")
TOKEN_CACHE: web.AppKey[dict[str, Any]] = web.AppKey("token_cache")
