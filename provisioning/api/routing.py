"""Operator API (admin only): carrier trunks and the longest-prefix route table.

Writes go through ``repo_trunks.import_routing`` (the import file's validation,
one transaction) and the running switch's routing table is reloaded at once,
so the next call uses the change. A route's prefix is written in the path as
it is stored: ``/api/v1/routes/+47``, and ``/api/v1/routes/+`` for the default
route (the empty prefix after ``+``). Trunk passwords are never returned.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.orm import selectinload

from switch.store.engine import write_session
from switch.store.models import Route, RouteTrunk, Trunk
from switch.store.repo_audit import add_audit_event
from switch.store.repo_trunks import RoutingImportError, import_routing, validate_prefix

from ..auth import ADMIN, PRINCIPAL, require
from ..errors import problem_details
from ..keys import DEPS
from .manage import _body

routes = web.RouteTableDef()

_TRUNK_FIELDS = ("name", "host", "port", "transport", "username", "password", "allowed_sources", "emergency",
                 "enabled")
_ROUTE_FIELDS = ("trunks", "enabled", "description")
_QUOTED = re.compile(r"'([a-z_]+)'")


def _field_of(message: str, fields: tuple[str, ...]) -> str:
    """The field a RoutingImportError is about (its message names it)."""
    for m in _QUOTED.finditer(message):
        if m.group(1) in fields:
            return m.group(1)
    tail = message.split(": ", 1)[-1]  # after "trunks[1] (name)"
    found = [(hit.start(), f) for f in fields if (hit := re.search(rf"\b{f}\b", tail)) is not None]
    if found:
        return min(found)[1]
    return "allowed_sources" if "CIDR" in message else fields[0]


def _trunk_json(t: Trunk, used_by: list[str]) -> dict[str, Any]:
    return {"name": t.name, "host": t.host, "port": t.port, "transport": str(getattr(t.transport, "value", t.transport)),
            "username": t.username, "has_password": bool(t.password_enc), "allowed_sources": list(t.allowed_sources or ()),
            "emergency": bool(t.emergency), "enabled": bool(t.enabled), "routes": used_by}


async def _routes_using(session: Any) -> dict[int, list[str]]:
    rows = (await session.execute(select(RouteTrunk.trunk_id, Route.prefix).join(Route, Route.id == RouteTrunk.route_id)
                                  .order_by(Route.prefix))).all()
    out: dict[int, list[str]] = {}
    for trunk_id, prefix in rows:
        out.setdefault(trunk_id, []).append(prefix)
    return out


async def _reload(request: web.Request) -> None:
    reload = request.app[DEPS].routing_reload
    if reload is not None:
        await reload()


async def _get_trunk(request: web.Request, name: str) -> dict[str, Any] | None:
    async with request.app[DEPS].session_factory() as session:
        t = (await session.execute(select(Trunk).where(Trunk.name == name))).scalar_one_or_none()
        return None if t is None else _trunk_json(t, (await _routes_using(session)).get(t.id, []))


async def _apply(request: web.Request, doc: dict[str, Any], fields: tuple[str, ...], action: str, subject_type: str,
                 subject_id: str, details: dict[str, Any]) -> web.Response | None:
    deps = request.app[DEPS]
    try:
        async with write_session(deps.session_factory) as session:
            await import_routing(session, doc, deps.secret_box)
            add_audit_event(session, actor=request[PRINCIPAL].actor, action=action, subject_type=subject_type,
                            subject_id=subject_id, details=details)
    except RoutingImportError as err:
        message = re.sub(r"^(trunks|routes)\[1\] ", "", str(err))
        return problem_details(422, message, field=_field_of(str(err), fields))
    await _reload(request)
    return None


def _unknown(body: dict[str, Any], fields: tuple[str, ...]) -> web.Response | None:
    unknown = sorted(set(body) - set(fields))
    return problem_details(400, f"{unknown[0]}: unknown field", field=unknown[0]) if unknown else None


@routes.get("/api/v1/trunks")
@require(ADMIN)
async def list_trunks(request: web.Request) -> web.Response:
    async with request.app[DEPS].session_factory() as session:
        trunks = (await session.execute(select(Trunk).order_by(Trunk.name))).scalars().all()
        used = await _routes_using(session)
        return web.json_response({"items": [_trunk_json(t, used.get(t.id, [])) for t in trunks]})


@routes.post("/api/v1/trunks")
@require(ADMIN)
async def create_trunk(request: web.Request) -> web.Response:
    """A trunk as in the import file (``name``, ``host`` required); 409 if the name is taken."""
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    if (bad := _unknown(body, _TRUNK_FIELDS)) is not None:
        return bad
    name = body.get("name")
    if isinstance(name, str) and await _get_trunk(request, name.strip()) is not None:
        return problem_details(409, f"name: a trunk {name.strip()!r} exists (PATCH it)", field="name")
    if isinstance(name, str) and "host" not in body:
        return problem_details(422, "'host' is required", field="host")
    refused = await _apply(request, {"trunks": [body]}, _TRUNK_FIELDS, "trunk.create", "trunk", str(name),
                           {k: v for k, v in body.items() if k != "password"})
    if refused is not None:
        return refused
    rep = await _get_trunk(request, str(name).strip())
    return web.json_response(rep, status=201, headers={"Location": f"/api/v1/trunks/{str(name).strip()}"})


@routes.get("/api/v1/trunks/{name}")
@require(ADMIN)
async def get_trunk(request: web.Request) -> web.Response:
    rep = await _get_trunk(request, request.match_info["name"])
    if rep is None:
        return problem_details(404, f"no trunk {request.match_info['name']!r}", field="name")
    return web.json_response(rep)


@routes.patch("/api/v1/trunks/{name}")
@require(ADMIN)
async def patch_trunk(request: web.Request) -> web.Response:
    """Any trunk field but ``name``; ``"password": ""`` removes the stored password."""
    name = request.match_info["name"]
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    if (bad := _unknown(body, _TRUNK_FIELDS[1:])) is not None:
        return bad
    if await _get_trunk(request, name) is None:
        return problem_details(404, f"no trunk {name!r}", field="name")
    refused = await _apply(request, {"trunks": [{**body, "name": name}]}, _TRUNK_FIELDS, "trunk.update", "trunk",
                           name, {k: v for k, v in body.items() if k != "password"} | (
                               {"password": "changed"} if "password" in body else {}))
    if refused is not None:
        return refused
    return web.json_response(await _get_trunk(request, name))


@routes.delete("/api/v1/trunks/{name}")
@require(ADMIN)
async def delete_trunk(request: web.Request) -> web.Response:
    """409 while a route uses the trunk (change or delete those routes first)."""
    name = request.match_info["name"]
    rep = await _get_trunk(request, name)
    if rep is None:
        return problem_details(404, f"no trunk {name!r}", field="name")
    if rep["routes"]:
        return problem_details(409, f"name: routes {', '.join(rep['routes'])} use trunk {name!r}", field="name")
    async with write_session(request.app[DEPS].session_factory) as session:
        await session.execute(delete(Trunk).where(Trunk.name == name))
        add_audit_event(session, actor=request[PRINCIPAL].actor, action="trunk.delete", subject_type="trunk",
                        subject_id=name, details={})
    await _reload(request)
    return web.Response(status=204)


def _prefix(request: web.Request) -> str | web.Response:
    raw = request.match_info["prefix"]
    try:
        return validate_prefix(raw)
    except RoutingImportError as err:
        return problem_details(400, f"prefix: {err} (the default route is /api/v1/routes/+)", field="prefix")


async def _get_route(request: web.Request, prefix: str) -> dict[str, Any] | None:
    async with request.app[DEPS].session_factory() as session:
        r = (await session.execute(select(Route).options(selectinload(Route.trunks)).where(Route.prefix == prefix))
             ).scalar_one_or_none()
        if r is None:
            return None
        names = dict((await session.execute(select(Trunk.id, Trunk.name))).tuples().all())
        return {"prefix": r.prefix, "trunks": [names[rt.trunk_id] for rt in sorted(r.trunks, key=lambda x: x.position)],
                "enabled": bool(r.enabled), "description": r.description}


@routes.get("/api/v1/routes")
@require(ADMIN)
async def list_routes(request: web.Request) -> web.Response:
    async with request.app[DEPS].session_factory() as session:
        prefixes = (await session.execute(select(Route.prefix).order_by(Route.prefix))).scalars().all()
    items = [await _get_route(request, p) for p in prefixes]
    return web.json_response({"items": items})


@routes.get("/api/v1/routes/{prefix}")
@require(ADMIN)
async def get_route(request: web.Request) -> web.Response:
    prefix = _prefix(request)
    if isinstance(prefix, web.Response):
        return prefix
    rep = await _get_route(request, prefix)
    if rep is None:
        return problem_details(404, f"no route for prefix {prefix!r}", field="prefix")
    return web.json_response(rep)


@routes.put("/api/v1/routes/{prefix}")
@require(ADMIN)
async def put_route(request: web.Request) -> web.Response:
    """``{"trunks": ["carrierA", "carrierB"], "enabled": true, "description": "..."}``: trunks in failover order."""
    prefix = _prefix(request)
    if isinstance(prefix, web.Response):
        return prefix
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    if (bad := _unknown(body, _ROUTE_FIELDS)) is not None:
        return bad
    existed = await _get_route(request, prefix) is not None
    refused = await _apply(request, {"routes": [{**body, "prefix": prefix}]}, _ROUTE_FIELDS, "route.put", "route",
                           prefix, dict(body))
    if refused is not None:
        return refused
    return web.json_response(await _get_route(request, prefix), status=200 if existed else 201)


@routes.delete("/api/v1/routes/{prefix}")
@require(ADMIN)
async def delete_route(request: web.Request) -> web.Response:
    prefix = _prefix(request)
    if isinstance(prefix, web.Response):
        return prefix
    async with write_session(request.app[DEPS].session_factory) as session:
        route_id = (await session.execute(select(Route.id).where(Route.prefix == prefix))).scalar_one_or_none()
        if route_id is None:
            return problem_details(404, f"no route for prefix {prefix!r}", field="prefix")
        await session.execute(delete(RouteTrunk).where(RouteTrunk.route_id == route_id))
        await session.execute(delete(Route).where(Route.id == route_id))
        add_audit_event(session, actor=request[PRINCIPAL].actor, action="route.delete", subject_type="route",
                        subject_id=prefix, details={})
    await _reload(request)
    return web.Response(status=204)
