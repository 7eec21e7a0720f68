"""``/metrics`` in the Prometheus text format, protected as the operator chooses.

* ``--metrics-token SECRET``: Prometheus sends ``Authorization: Bearer SECRET``
  (``authorization: {credentials: ...}`` in its scrape config);
* ``--metrics-listen HOST:PORT``: a listener of its own that serves only
  ``/metrics``, without a token, on an address the operator picked (a
  management VLAN, 127.0.0.1 behind a node exporter proxy);
* otherwise ``/metrics`` on the HTTP port takes an operator API token.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any, cast

from aiohttp import web

from switch.services.metrics import CONTENT_TYPE

from ..auth import STAFF_READ, require
from ..errors import problem_details
from ..deps import HttpDeps
from ..keys import DEPS

__all__ = ["routes", "start_metrics_http"]

log = logging.getLogger(__name__)

routes = web.RouteTableDef()


def _render(request: web.Request) -> web.Response:
    metrics = request.app[DEPS].metrics
    if metrics is None:
        return problem_details(503, "metrics are not collected in this process")
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})


@require(*STAFF_READ)
async def _with_api_token(request: web.Request) -> web.StreamResponse:
    return _render(request)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.StreamResponse:
    """The switch's metrics; needs the metrics token when one is set, else an operator API token."""
    secret = request.app[DEPS].config.metrics_token
    if not secret:
        resp: web.StreamResponse = await _with_api_token(request)
        return resp
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), secret.encode()):
        resp = problem_details(401, "missing or wrong metrics token: send 'Authorization: Bearer <metrics token>'")
        resp.headers["WWW-Authenticate"] = 'Bearer realm="softswitch-metrics"'
        return resp
    return _render(request)


async def _open_metrics(request: web.Request) -> web.StreamResponse:
    return _render(request)


#: For the route-walk test: with no metrics token set, /metrics takes these API roles.
cast(Any, metrics).roles = cast(Any, _with_api_token).roles


async def start_metrics_http(deps: HttpDeps, main: web.Application) -> None:
    """The dedicated, token-free metrics listener (``metrics_listen``); stopped with the main HTTP app."""
    listen = deps.config.metrics_listen
    if listen is None:
        return
    app = web.Application()
    app[DEPS] = deps
    app.router.add_get("/metrics", _open_metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, listen[0], listen[1], reuse_address=True)
    await site.start()
    log.info("metrics listening on %s:%s (no token)", *listen)

    async def stop(_app: web.Application) -> None:
        await runner.cleanup()

    main.on_cleanup.append(stop)
