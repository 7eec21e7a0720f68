"""Operator API (admin only): operator users — list, create, change role/state/name, reset a password.

A generated password is returned once (``Cache-Control: no-store``); only its
argon2id hash is kept. Disabling a user or changing its role applies to its
API tokens at once (the token cache is dropped) and a disabled user's browser
sessions end. Every change is audited with who made it.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from aiohttp import web

from switch.store import repo_users
from switch.store.engine import write_session
from switch.store.models import OperatorRole
from switch.store.repo_audit import add_audit_event
from switch.store.repo_manage import etag_of

from ..auth import ADMIN, PRINCIPAL, require
from ..errors import problem_details
from ..keys import DEPS, TOKEN_CACHE
from .manage import _body

routes = web.RouteTableDef()

_ROLES = tuple(r.value for r in OperatorRole)
#: Letters (any script), digits and ``. _ @ + -``: a username goes into URLs, logs and audit rows.
_USERNAME = re.compile(r"[^\W][\w.@+\-]{0,63}")


def _text_ok(value: str) -> bool:
    """Storable and printable: no lone surrogates (not UTF-8), no control characters."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return value.isprintable()


def _rep(u: repo_users.UserInfo) -> dict[str, Any]:
    return {"username": u.username, "display_name": u.display_name, "role": u.role.value, "enabled": u.enabled}


def _one(rep: dict[str, Any], status: int = 200, password: str | None = None) -> web.Response:
    body = dict(rep) if password is None else {**rep, "password": password}
    resp = web.json_response(body, status=status)
    resp.headers["ETag"] = etag_of(rep)
    if password is not None:
        resp.headers["Cache-Control"] = "no-store"
    return resp


def _role(value: object) -> str | web.Response:
    if value not in _ROLES:
        return problem_details(400, f"role: must be one of {', '.join(_ROLES)}", field="role")
    return str(value)


@routes.get("/api/v1/users")
@require(ADMIN)
async def list_users(request: web.Request) -> web.Response:
    users = await repo_users.list_users(request.app[DEPS].session_factory)
    return web.json_response({"items": [_rep(u) for u in users]})


@routes.post("/api/v1/users")
@require(ADMIN)
async def create_user(request: web.Request) -> web.Response:
    """``{"username": "kari", "role": "support", "display_name": "Kari"}``; the generated password is shown once."""
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    unknown = set(body) - {"username", "role", "display_name"}
    if unknown:
        return problem_details(400, f"{sorted(unknown)[0]}: unknown field", field=sorted(unknown)[0])
    username, display = body.get("username"), body.get("display_name", "")
    if not isinstance(username, str) or not _USERNAME.fullmatch(username) or not _text_ok(username):
        return problem_details(400, "username: required, 1-64 letters, digits or . _ @ + - (not starting with "
                               "a punctuation mark)", field="username")
    if not isinstance(display, str) or len(display) > 200 or not _text_ok(display):
        return problem_details(400, "display_name: printable text of at most 200 characters", field="display_name")
    role = _role(body.get("role"))
    if isinstance(role, web.Response):
        return role
    sf = request.app[DEPS].session_factory
    try:
        password, info = await repo_users.create_user(sf, username, role, display_name=display)
    except repo_users.UserExists as err:
        return problem_details(409, f"username: {err}", field="username")
    except ValueError as err:
        return problem_details(400, str(err), field="username")
    async with write_session(sf) as session:
        add_audit_event(session, actor=request[PRINCIPAL].actor, action="user.create", subject_type="user",
                        subject_id=info.username, details={"role": role})
    resp = _one(_rep(info), 201, password)
    resp.headers["Location"] = f"/api/v1/users/{quote(info.username, safe='@+')}"
    return resp


@routes.patch("/api/v1/users/{username}")
@require(ADMIN)
async def patch_user(request: web.Request) -> web.Response:
    """``role``, ``enabled``, ``display_name``; ``"reset_password": true`` returns a new password once.

    ``If-Match`` with the user's ETag makes it conditional (412 when it changed).
    """
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    unknown = set(body) - {"role", "enabled", "display_name", "reset_password"}
    if unknown:
        return problem_details(400, f"{sorted(unknown)[0]}: unknown field", field=sorted(unknown)[0])
    role = None
    if "role" in body:
        checked = _role(body["role"])
        if isinstance(checked, web.Response):
            return checked
        role = checked
    enabled = body.get("enabled")
    if "enabled" in body and not isinstance(enabled, bool):
        return problem_details(400, "enabled: true or false", field="enabled")
    display = body.get("display_name")
    if "display_name" in body and (not isinstance(display, str) or len(display) > 200 or not _text_ok(display)):
        return problem_details(400, "display_name: printable text of at most 200 characters", field="display_name")
    reset = body.get("reset_password", False)
    if not isinstance(reset, bool):
        return problem_details(400, "reset_password: true or false", field="reset_password")
    sf = request.app[DEPS].session_factory
    username = request.match_info["username"]
    current = next((u for u in await repo_users.list_users(sf) if u.username == username), None)
    if current is None:
        return problem_details(404, f"no operator user {username!r}", field="username")
    if_match = request.headers.get("If-Match")
    if if_match is not None and if_match.strip() not in ("*", etag_of(_rep(current))):
        return problem_details(412, "the user was changed since you read it: read it again", field="If-Match")
    principal = request[PRINCIPAL]
    if principal.username == username and (enabled is False or (role is not None and role != ADMIN)):
        return problem_details(409, "an admin cannot disable or demote itself: ask another admin",
                               field="enabled" if enabled is False else "role")
    password = repo_users.generate_password() if reset else None
    try:
        info = await repo_users.update_user(sf, username, role=role, enabled=enabled,
                                            display_name=display if isinstance(display, str) else None,
                                            new_password=password, actor=principal.actor)
    except LookupError:
        return problem_details(404, f"no operator user {username!r}", field="username")
    request.app[TOKEN_CACHE].clear()  # the user's tokens act with the new role (or not at all) from now on
    return _one(_rep(info), 200, password)
