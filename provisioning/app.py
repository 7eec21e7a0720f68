"""The HTTP side: operator API, customer API, adapter provisioning, web UI.

``create_app`` builds the aiohttp application around an ``HttpDeps``
(provisioning/deps.py): the few things its handlers use, handed over by the
composition root or built by a test without any SIP side. No globals:
everything hangs off typed ``AppKey``s.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import replace

from aiohttp import web

from switch.transport.ratelimit import FailureThrottle

from . import ata, ui
from .api import (adapters, billing, calls, feature_codes, manage, metrics, openapi, policy, price, provisioning,
                  routing, users)
from .auth import AUTH_THROTTLE
from .connections import ConnectionGate, GatedSite, HttpLimits, close_after_body_timeout
from .deps import HttpDeps
from .errors import json_errors
from .guards import CLIENT_MAX_SIZE, access_log, limits, plain_server_header
from .keys import DEPS, HTTP_GATE, TOKEN_CACHE

__all__ = ["create_app", "start_http"]

log = logging.getLogger(__name__)


async def health(request: web.Request) -> web.Response:
    body: dict[str, object] = {"status": "ok", **request.app[DEPS].health()}
    gate = request.app.get(HTTP_GATE)
    if gate is not None:  # served by start_http (not an in-process test app)
        body["http"] = {"open": gate.stats.open, "refused_per_source": gate.stats.refused_per_source,
                        "refused_global": gate.stats.refused_global, "header_timeouts": gate.stats.header_timeouts,
                        "body_timeouts": gate.stats.body_timeouts}
    return web.json_response(body)


#: Every operator-API route table; each route is described in provisioning/api/openapi.yaml (a test checks).
API_ROUTES = (adapters.routes, calls.routes, billing.routes, price.routes, metrics.routes, policy.routes, feature_codes.routes,
              provisioning.routes, manage.routes, users.routes, routing.routes, openapi.routes)


def create_app(deps: HttpDeps) -> web.Application:
    app = web.Application(middlewares=[access_log, json_errors, limits], client_max_size=CLIENT_MAX_SIZE)
    app[DEPS] = deps
    app.on_response_prepare.append(plain_server_header)
    app[TOKEN_CACHE] = {}
    app[AUTH_THROTTLE] = FailureThrottle(threshold=20, window=60.0, block=60.0)
    app.router.add_get("/health", health)
    for table in API_ROUTES:
        app.router.add_routes(table)
    ata.setup(app)  # adapter-facing: bootstrap files and /cfg/... (see provisioning/ata.py)
    if deps.ui is not None:
        # a token revoked in the UI stops working at once: it clears this app's token cache
        ui.setup(app, replace(deps.ui, token_revoked=app[TOKEN_CACHE].clear))  # /ui/ and /min-side/
    return app


async def start_http(
    deps: HttpDeps, listen: tuple[str, int], *, tls_cert: str | None = None, tls_key: str | None = None,
    limits: HttpLimits | None = None,
) -> web.AppRunner:
    """Serve ``create_app(deps)`` on ``listen`` (HTTPS when a certificate and key are given), every
    connection within ``limits`` (provisioning/connections.py: caps and the request-head timeout)."""
    app = create_app(deps)
    gate = ConnectionGate(limits or HttpLimits())
    app[HTTP_GATE] = gate
    app.on_response_prepare.append(close_after_body_timeout)
    await metrics.start_metrics_http(deps, app)  # before the app is frozen: it stops with it
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = listen
    ctx = None
    if tls_cert and tls_key:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(tls_cert, tls_key)
    site = GatedSite(runner, host, port, gate, ssl_context=ctx)
    await site.start()
    log.info("HTTP%s listening on %s:%s (at most %d connections, %d per source address)", "S" if ctx else "", host,
             port, gate.limits.max_connections, gate.limits.max_per_source)
    return runner
