"""Operator API (admin only): carrier trunks and the longest-prefix route table.

The handlers read the body and answer; validating, storing, auditing and
reloading the running switch's routing table (so the next call uses the
change) is ``switch.services.routing_admin.RoutingAdmin``, which the web UI's
admin page calls too. A route's prefix is written in the path as it is
stored: ``/api/v1/routes/+47``, and ``/api/v1/routes/+`` for the default
route (the empty prefix after ``+``). Trunk passwords are never returned.
"""

from __future__ import annotations

from aiohttp import web

from switch.services.routing_admin import RoutingAdmin, RoutingChangeError, prefix_of

from ..auth import ADMIN, PRINCIPAL, require
from ..errors import problem_details
from ..keys import DEPS
from .manage import _body

routes = web.RouteTableDef()


def _admin(request: web.Request) -> RoutingAdmin:
    deps = request.app[DEPS]
    return RoutingAdmin(deps.session_factory, deps.secret_box, deps.routing_reload)


def _refused(err: RoutingChangeError) -> web.Response:
    return problem_details(err.status, str(err), field=err.field)


@routes.get("/api/v1/trunks")
@require(ADMIN)
async def list_trunks(request: web.Request) -> web.Response:
    return web.json_response({"items": await _admin(request).trunks()})


@routes.post("/api/v1/trunks")
@require(ADMIN)
async def create_trunk(request: web.Request) -> web.Response:
    """A trunk as in the import file (``name``, ``host`` required); 409 if the name is taken."""
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    try:
        rep = await _admin(request).create_trunk(body, request[PRINCIPAL].actor)
    except RoutingChangeError as err:
        return _refused(err)
    return web.json_response(rep, status=201, headers={"Location": f"/api/v1/trunks/{rep['name']}"})


@routes.get("/api/v1/trunks/{name}")
@require(ADMIN)
async def get_trunk(request: web.Request) -> web.Response:
    rep = await _admin(request).trunk(request.match_info["name"])
    if rep is None:
        return problem_details(404, f"no trunk {request.match_info['name']!r}", field="name")
    return web.json_response(rep)


@routes.patch("/api/v1/trunks/{name}")
@require(ADMIN)
async def patch_trunk(request: web.Request) -> web.Response:
    """Any trunk field but ``name``; ``"password": ""`` removes the stored password."""
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    try:
        rep = await _admin(request).update_trunk(request.match_info["name"], body, request[PRINCIPAL].actor)
    except RoutingChangeError as err:
        return _refused(err)
    return web.json_response(rep)


@routes.delete("/api/v1/trunks/{name}")
@require(ADMIN)
async def delete_trunk(request: web.Request) -> web.Response:
    """409 while a route uses the trunk (change or delete those routes first)."""
    try:
        await _admin(request).delete_trunk(request.match_info["name"], request[PRINCIPAL].actor)
    except RoutingChangeError as err:
        return _refused(err)
    return web.Response(status=204)


@routes.get("/api/v1/routes")
@require(ADMIN)
async def list_routes(request: web.Request) -> web.Response:
    return web.json_response({"items": await _admin(request).routes()})


@routes.get("/api/v1/routes/{prefix}")
@require(ADMIN)
async def get_route(request: web.Request) -> web.Response:
    try:
        prefix = prefix_of(request.match_info["prefix"])
    except RoutingChangeError as err:
        return _refused(err)
    rep = await _admin(request).route(prefix)
    if rep is None:
        return problem_details(404, f"no route for prefix {prefix!r}", field="prefix")
    return web.json_response(rep)


@routes.put("/api/v1/routes/{prefix}")
@require(ADMIN)
async def put_route(request: web.Request) -> web.Response:
    """``{"trunks": ["carrierA", "carrierB"], "enabled": true, "description": "..."}``: trunks in failover order."""
    try:
        prefix = prefix_of(request.match_info["prefix"])
    except RoutingChangeError as err:
        return _refused(err)
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    try:
        rep, created = await _admin(request).put_route(prefix, body, request[PRINCIPAL].actor)
    except RoutingChangeError as err:
        return _refused(err)
    return web.json_response(rep, status=201 if created else 200)


@routes.delete("/api/v1/routes/{prefix}")
@require(ADMIN)
async def delete_route(request: web.Request) -> web.Response:
    try:
        await _admin(request).delete_route(prefix_of(request.match_info["prefix"]), request[PRINCIPAL].actor)
    except RoutingChangeError as err:
        return _refused(err)
    return web.Response(status=204)
