"""The HTTP side: operator API, customer API, adapter provisioning, web UI.

``create_app`` builds the aiohttp application around a running switch's
services (no globals: everything hangs off typed ``AppKey``s).
"""

from __future__ import annotations

import logging
import ssl
import time
from typing import TYPE_CHECKING

from aiohttp import web

from switch import _core_loader, gcstats
from switch.transport.ratelimit import FailureThrottle

from . import ata, ui
from .api import adapters, billing, calls, feature_codes, manage, metrics, openapi, policy, provisioning
from .auth import AUTH_THROTTLE
from .errors import json_errors
from .keys import SERVICES, TOKEN_CACHE

if TYPE_CHECKING:
    from switch.app import Services

log = logging.getLogger(__name__)


async def health(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    ep = services.endpoint
    return web.json_response(
        {
            "status": "ok",
            "sip_core": _core_loader.STATE,
            "gc": gcstats.STATS.snapshot(),
            "bindings": services.location.count(),
            "binding_commits": services.location.commit_stats(),
            "announcements": _announcements(services),
            "sip": {
                "received": ep.stats.received,
                "sent": ep.stats.sent,
                "rate_limited": ep.stats.rate_limited,
                "transactions": ep.layer.live_transactions,
            },
        }
    )


def _announcements(services: Services) -> dict[str, object] | None:
    """The announcement player's counters (docs/announcements.md), None before calls are installed."""
    calls = services.calls
    announcer = getattr(getattr(calls, "env", None), "announcer", None)
    return None if announcer is None else announcer.snapshot()


#: Every operator-API route table; each route is described in provisioning/api/openapi.yaml (a test checks).
API_ROUTES = (adapters.routes, calls.routes, billing.routes, metrics.routes, policy.routes, feature_codes.routes,
              provisioning.routes, manage.routes, openapi.routes)


def create_app(services: Services) -> web.Application:
    app = web.Application(middlewares=[json_errors], client_max_size=2 * 1024 * 1024)
    app[SERVICES] = services
    app[TOKEN_CACHE] = {}
    app[AUTH_THROTTLE] = FailureThrottle(threshold=20, window=60.0, block=60.0)
    app.router.add_get("/health", health)
    for table in API_ROUTES:
        app.router.add_routes(table)
    ata.setup(app)  # adapter-facing: bootstrap files and /cfg/... (see provisioning/ata.py)
    deps = _ui_deps(services)
    deps.token_revoked = app[TOKEN_CACHE].clear  # a token revoked in the UI stops working at once
    ui.setup(app, deps)  # /ui/ (operators) and /min-side/ (customers)
    return app


def _ui_deps(services: Services) -> ui.UiDeps:
    """What the web pages use of the running switch (see provisioning/ui/deps.py)."""
    from .ui.deps import BindingView

    def bindings(line_id: int) -> list[BindingView]:
        now = time.time()
        return [
            BindingView(b.contact, f"{b.received_host}:{b.received_port}", b.transport, b.remaining(now), b.user_agent)
            for b in services.location.bindings(line_id)
        ]

    calls = services.calls
    return ui.UiDeps(
        session_factory=services.session_factory,
        lamps=services.status.status,
        bindings=bindings,
        calls_in_progress=(lambda: len(calls.calls)) if calls is not None else (lambda: 0),
        registered_lines=lambda: len(services.location.all_lines()),
        policy=getattr(services, "policy", None),
        secret_box=services.secret_box,
        realm=services.settings.effective_realm(),
        after_change=services.lines.reload,
        token_revoked=lambda: None,  # create_app clears the token cache (see below)
        secure_cookies=bool(services.settings.tls_cert and services.settings.tls_key),
    )


async def start_http(services: Services) -> web.AppRunner:
    app = create_app(services)
    await metrics.start_metrics_http(services, app)  # before the app is frozen: it stops with it
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = services.settings.http_listen
    ctx = None
    s = services.settings
    if s.tls_cert and s.tls_key:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(s.tls_cert, s.tls_key)
    site = web.TCPSite(runner, host, port, ssl_context=ctx, reuse_address=True)
    await site.start()
    log.info("HTTP%s listening on %s:%s", "S" if ctx else "", host, port)
    return runner
