"""Web pages: the operator UI at ``/ui/`` and the customers' "Min side" at ``/min-side/``.

Server-rendered (aiohttp + Jinja2), no JavaScript build step; htmx (vendored,
``static/htmx.min.js``) only refreshes parts of a page. ``setup(app, deps)``
adds the routes to the HTTP application.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp.web import Application

from . import minside, operator, operator_admin
from .limits import form_limits
from .deps import UI_DEPS, UiDeps

__all__ = ["UiDeps", "setup"]

STATIC = Path(__file__).with_name("static")


def setup(app: Application, deps: UiDeps) -> None:
    app[UI_DEPS] = deps
    app.middlewares.append(form_limits)  # every form field of every page: one floor (provisioning/ui/limits.py)
    app.router.add_routes(operator.routes)
    app.router.add_routes(operator_admin.routes)
    app.router.add_routes(minside.routes)
    app.router.add_static("/ui/static/", STATIC, name="ui_static", append_version=True)
