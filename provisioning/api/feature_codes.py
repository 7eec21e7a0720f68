"""Operator API: the per-code star-code policy (enabled, or refused with an announcement).

``#21#`` and ``##002#`` cannot be refused (a customer who forwarded by
mistake must always be able to undo it): a PUT that tries gets a 422 that
says so, and nothing is stored. The change is live at once (the running
switch holds the policies in memory) and written with an audit event.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from feature_codes import CODES, CodePolicy, PolicyError

from ..auth import PRINCIPAL, STAFF_READ, STAFF_WRITE, require
from ..errors import problem_details
from ..keys import DEPS
from .policy import actor_of

routes = web.RouteTableDef()


def _as_json(p: CodePolicy, default: CodePolicy) -> dict[str, Any]:
    return {
        "code": p.code,
        "enabled": p.enabled,
        "announcement": p.announcement,
        "prompt": None if p.enabled else p.prompt,
        "description": p.description,
        "locked": p.locked,
        "default": {"enabled": default.enabled, "announcement": default.announcement},
    }


def _star_codes(request: web.Request) -> Any:
    star_codes = request.app[DEPS].star_codes
    if star_codes is None:
        raise web.HTTPServiceUnavailable(text="star codes are not running in this process")
    return star_codes


@routes.get("/api/v1/feature-codes")
@require(*STAFF_READ)
async def list_feature_codes(request: web.Request) -> web.StreamResponse:
    """Every code's policy as the switch applies it now (stored override or default)."""
    from feature_codes import DEFAULT_POLICIES

    policies = _star_codes(request).policies
    return web.json_response({"feature_codes": [_as_json(p, DEFAULT_POLICIES[p.code]) for p in policies.all()]})


@routes.put("/api/v1/feature-codes/{code}")
@require(*STAFF_WRITE)
async def put_feature_code(request: web.Request) -> web.StreamResponse:
    """Body ``{"enabled": bool, "announcement": "prompt_key" | null, "description": "..."}``.

    The code goes in the path as dialled, ``#`` escaped: ``/api/v1/feature-codes/%2321%23``.
    """
    from feature_codes import DEFAULT_POLICIES

    code = unquote(request.match_info["code"])
    if code not in CODES:
        return problem_details(404, f"unknown code {code!r}; known: {', '.join(CODES)} (escape # as %23)")
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return problem_details(400, "body must be JSON: "
                                    "{\"enabled\": true|false, \"announcement\": \"prompt key\"|null}")
    if not isinstance(body, dict):
        return problem_details(400, "body must be a JSON object")
    unknown = sorted(set(body) - {"enabled", "announcement", "description"})
    if unknown:
        return problem_details(400, f"unknown field(s): {', '.join(unknown)}")
    star_codes = _star_codes(request)
    current: CodePolicy = star_codes.policies.get(code)
    enabled = body.get("enabled", current.enabled)
    announcement = body.get("announcement", current.announcement)
    description = body.get("description", current.description)
    if not isinstance(enabled, bool):
        return problem_details(422, "enabled must be true or false", field="enabled")
    if announcement is not None and not isinstance(announcement, str):
        return problem_details(422, "announcement must be a prompt key or null", field="announcement")
    if not isinstance(description, str):
        return problem_details(422, "description must be a string", field="description")
    try:
        stored = await star_codes.set_policy(CodePolicy(code, enabled, announcement, description),
                                             actor_of(request[PRINCIPAL]))
    except PolicyError as exc:
        return problem_details(422, exc.message, field=exc.field, code=exc.code)
    return web.json_response(_as_json(stored, DEFAULT_POLICIES[code]))
