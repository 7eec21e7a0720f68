"""Typed application keys (aiohttp ``web.AppKey``): no string keys, no globals."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .deps import HttpDeps

if TYPE_CHECKING:
    from .auth import Principal
    from .connections import ConnectionGate

#: what the handlers use (provisioning/deps.py), given by the composition root or a test
DEPS: web.AppKey[HttpDeps] = web.AppKey("deps", HttpDeps)
#: bearer token -> (who it is, monotonic time the entry expires)
TOKEN_CACHE: web.AppKey[dict[str, tuple["Principal", float]]] = web.AppKey("token_cache")
#: the HTTP connection gate of the listening site (provisioning/connections.py), when served by ``start_http``
HTTP_GATE: web.AppKey["ConnectionGate"] = web.AppKey("http_gate")
