"""Operator API: the subscriber model — customers, adapters, lines, imports, tokens, audit log.

Creating goes through the importer (``softswitch import``'s validation, one
transaction); changing single fields, MAC swaps, password resets, deletion
and termination through ``switch.store.repo_manage``. Objects carry an ETag;
``If-Match`` makes a change conditional (412 when someone else changed the
object first). Errors are RFC 9457 problem+json naming the field. Changes take
effect in the running switch at once: the line directory is reloaded (a new
line can register immediately, a new password applies to the next REGISTER)
and the bindings of deleted, disabled or moved lines are dropped.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from aiohttp import web

from switch.store import importer, repo_manage, repo_tokens
from switch.store.import_validation import ImportValidationError, parse_import_document
from switch.store.models import TokenRole
from switch.store.engine import write_session
from switch.store.repo_audit import add_audit_event, list_audit_events
from switch.store.repo_manage import ManageError, Page, etag_of

from ..auth import ADMIN, PRINCIPAL, STAFF_READ, STAFF_WRITE, require
from ..errors import problem_details
from ..guards import MAX_WHOLE, whole_number
from ..keys import DEPS, TOKEN_CACHE

routes = web.RouteTableDef()

#: What ``POST /api/v1/tokens`` takes (``operator``, the role before roles existed, is made as admin now).
_TOKEN_ROLES = (TokenRole.ADMIN.value, TokenRole.SUPPORT.value, TokenRole.READONLY.value, TokenRole.CUSTOMER.value)

MAX_BODY = 1024 * 1024


def _actor(request: web.Request) -> str:
    principal = request.get(PRINCIPAL)
    return principal.actor if principal is not None else "operator"


def _error(err: ManageError) -> web.Response:
    return problem_details(err.status, err.message, field=err.field or None)


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    if request.content_type != "application/json":
        return problem_details(415, "send the body as application/json")
    if request.content_length is not None and request.content_length > MAX_BODY:
        return problem_details(413, f"body larger than {MAX_BODY} bytes")
    try:
        data = json.loads(await request.text())
    except ValueError as err:
        return problem_details(400, f"body is not valid JSON: {err}")
    if not isinstance(data, dict):
        return problem_details(400, "body must be a JSON object")
    return data


def _int_query(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    n = whole_number(raw)
    if n is None:
        raise ManageError(400, name, f"must be a whole number from 0 to {MAX_WHOLE}")
    return n


async def _listed(request: web.Request, lister: Callable[..., Awaitable[Page]], *filters: str) -> web.Response:
    """A paginated, searchable list: ``q``, ``limit``, ``offset`` and the named filters from the query."""
    try:
        page = await lister(request.app[DEPS].session_factory, q=request.query.get("q", "")[:100],
                            limit=_int_query(request, "limit", 50), offset=_int_query(request, "offset", 0),
                            **{name: request.query.get(name) for name in filters})
    except ManageError as err:
        return _error(err)
    return _page(page)


async def _got(request: web.Request, getter: Callable[..., Awaitable[dict[str, Any]]], key: str) -> web.Response:
    try:
        return _one(await getter(request.app[DEPS].session_factory, request.match_info[key]))
    except ManageError as err:
        return _error(err)


async def _changed(request: web.Request, change: Callable[..., Awaitable[Any]], key: str, *,
                   body: bool = True) -> Any:
    """Run a repo_manage change with the JSON body, the actor and If-Match; a problem answer on error."""
    args: list[Any] = [request.app[DEPS].session_factory, request.match_info[key]]
    if body:
        data = await _body(request)
        if isinstance(data, web.Response):
            return data
        args.append(data)
    try:
        return await change(*args, actor=_actor(request), if_match=request.headers.get("If-Match"))
    except ManageError as err:
        return _error(err)


def _one(rep: dict[str, Any], status: int = 200) -> web.Response:
    resp = web.json_response(rep, status=status)
    resp.headers["ETag"] = etag_of(rep)
    return resp


def _page(p: Page) -> web.Response:
    return web.json_response({"items": p.items, "total": p.total, "limit": p.limit, "offset": p.offset})


async def _live(request: web.Request, drop_bindings: Iterable[int] = ()) -> None:
    """Make the running switch see the change now (not at the next 5 s reload)."""
    deps = request.app[DEPS]
    await deps.lines.reload()
    if deps.policy is not None:
        # new lines and customers enter the policy state too (a suspension of their customer applies at once)
        await deps.policy.reload_if_changed()
    for line_id in drop_bindings:
        if deps.location.bindings(line_id):
            deps.location.replace(line_id, [], lambda _exc: None)


def _realm(request: web.Request) -> str:
    return request.app[DEPS].config.realm


async def _import(request: web.Request, doc_data: dict[str, Any]) -> importer.ImportReport | web.Response:
    deps = request.app[DEPS]
    try:
        doc = parse_import_document(doc_data, source="api")
        return await importer.import_document(deps.session_factory, doc, deps.secret_box, _realm(request),
                                              actor=_actor(request))
    except ImportValidationError as err:
        issues = [{"field": i.path, "message": i.message} for i in err.issues]
        first = issues[0] if issues else {"field": "", "message": str(err)}
        return problem_details(422, f"{first['field']}: {first['message']}" if first["field"] else first["message"],
                               field=first["field"] or None, issues=issues)


# ------------------------------------------------------------------------- imports


@routes.post("/api/v1/imports")
@require(*STAFF_WRITE)
async def post_import(request: web.Request) -> web.Response:
    """A whole import document (customers, adapters, lines, trunks, routes), as `softswitch import`."""
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    for section in ("trunks", "routes"):
        if section in body and request[PRINCIPAL].role != ADMIN:
            return problem_details(403, f"{section}: trunks and routes need an admin token", field=section)
    report = await _import(request, body)
    if isinstance(report, web.Response):
        return report
    await _live(request)
    reload_routing = request.app[DEPS].routing_reload
    if reload_routing is not None and ("trunks" in body or "routes" in body):
        await reload_routing()  # the next call routes by the imported table, not after the 30 s tick
    return web.json_response({"created": report.created, "updated": report.updated, "routing": report.routing,
                              "summary": report.summary()})


# ------------------------------------------------------------------------- customers


@routes.get("/api/v1/customers")
@require(*STAFF_READ)
async def list_customers(request: web.Request) -> web.Response:
    return await _listed(request, repo_manage.list_customers, "state")


@routes.post("/api/v1/customers")
@require(*STAFF_WRITE)
async def create_customer(request: web.Request) -> web.Response:
    """A new customer, in the import file's shape (``adapters`` and their ``lines`` may come along)."""
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    ref = body.get("id")
    if isinstance(ref, str):
        try:
            await repo_manage.get_customer(request.app[DEPS].session_factory, ref.strip())
            return problem_details(409, f"customer {ref.strip()} exists", field="id")
        except ManageError:
            pass
    report = await _import(request, {"customers": [body]})
    if isinstance(report, web.Response):
        return report
    await _live(request)
    rep = await repo_manage.get_customer(request.app[DEPS].session_factory, str(body["id"]).strip())
    resp = _one(rep, 201)
    resp.headers["Location"] = f"/api/v1/customers/{rep['id']}"
    return resp


@routes.get("/api/v1/customers/{ref}")
@require(*STAFF_READ)
async def get_customer(request: web.Request) -> web.Response:
    return await _got(request, repo_manage.get_customer, "ref")


@routes.patch("/api/v1/customers/{ref}")
@require(*STAFF_WRITE)
async def patch_customer(request: web.Request) -> web.Response:
    rep = await _changed(request, repo_manage.patch_customer, "ref")
    return rep if isinstance(rep, web.Response) else _one(rep)


@routes.post("/api/v1/customers/{ref}/terminate")
@require(*STAFF_WRITE)
async def terminate_customer(request: web.Request) -> web.Response:
    """End the contract: lines disabled and unregistered, numbers freed, history kept."""
    done = await _changed(request, repo_manage.terminate_customer, "ref", body=False)
    if isinstance(done, web.Response):
        return done
    rep, line_ids = done
    await _live(request, line_ids)
    return _one(rep)


# ------------------------------------------------------------------------- adapters


@routes.get("/api/v1/adapters")
@require(*STAFF_READ)
async def list_adapters(request: web.Request) -> web.Response:
    return await _listed(request, repo_manage.list_adapters, "customer")


async def _customer_entry(request: web.Request, ref: Any) -> dict[str, Any] | web.Response:
    if not isinstance(ref, str) or not ref.strip():
        return problem_details(400, "customer: required (the customer number)", field="customer")
    try:
        c = await repo_manage.get_customer(request.app[DEPS].session_factory, ref.strip())
    except ManageError:
        return problem_details(404, f"no customer {ref.strip()!r}", field="customer")
    return {"id": c["id"], "name": c["name"]}


@routes.post("/api/v1/adapters")
@require(*STAFF_WRITE)
async def create_adapter(request: web.Request) -> web.Response:
    """``{"customer": "C1001", "mac": "...", "model": "spa112", "lines": [...]}`` (the import file's adapter)."""
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    entry = await _customer_entry(request, body.pop("customer", None))
    if isinstance(entry, web.Response):
        return entry
    mac = body.get("mac")
    if isinstance(mac, str):
        try:
            await repo_manage.get_adapter(request.app[DEPS].session_factory, mac)
            return problem_details(409, f"adapter {mac} exists", field="mac")
        except ManageError:
            pass
    entry["adapters"] = [body]
    report = await _import(request, {"customers": [entry]})
    if isinstance(report, web.Response):
        return report
    await _live(request)
    rep = await repo_manage.get_adapter(request.app[DEPS].session_factory, str(mac))
    resp = _one(rep, 201)
    resp.headers["Location"] = f"/api/v1/adapters/{rep['mac']}"
    return resp


@routes.get("/api/v1/adapters/{mac}")
@require(*STAFF_READ)
async def get_adapter(request: web.Request) -> web.Response:
    return await _got(request, repo_manage.get_adapter, "mac")


@routes.patch("/api/v1/adapters/{mac}")
@require(*STAFF_WRITE)
async def patch_adapter(request: web.Request) -> web.Response:
    """Model, description, owner — or ``mac`` to swap the unit (its lines stay; they register from the new one)."""
    done = await _changed(request, repo_manage.patch_adapter, "mac")
    if isinstance(done, web.Response):
        return done
    rep, dropped = done
    await _live(request, dropped)
    return _one(rep)


@routes.delete("/api/v1/adapters/{mac}")
@require(*STAFF_WRITE)
async def delete_adapter(request: web.Request) -> web.Response:
    done = await _changed(request, repo_manage.delete_adapter, "mac", body=False)
    return done if isinstance(done, web.Response) else web.Response(status=204)


# ------------------------------------------------------------------------- lines


@routes.get("/api/v1/lines")
@require(*STAFF_READ)
async def list_lines(request: web.Request) -> web.Response:
    return await _listed(request, repo_manage.list_lines, "customer")


@routes.post("/api/v1/lines")
@require(*STAFF_WRITE)
async def create_line(request: web.Request) -> web.Response:
    """``{"customer": "C1001", "adapter": "00:0E:08:AB:CD:01", "port": 2, "number": "22000002", ...}``.

    Without ``password`` one is generated and returned once in this answer.
    """
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    entry = await _customer_entry(request, body.pop("customer", None))
    if isinstance(entry, web.Response):
        return entry
    mac = body.pop("adapter", None)
    if not isinstance(mac, str):
        return problem_details(400, "adapter: required (the adapter's MAC)", field="adapter")
    try:
        adapter = await repo_manage.get_adapter(request.app[DEPS].session_factory, mac)
    except ManageError as err:
        return problem_details(err.status, err.message, field="adapter")
    port = body.get("port")
    if any(li["port"] == port for li in adapter["lines"]):
        return problem_details(409, f"port {port} of {adapter['mac']} carries a line already (PATCH or DELETE it)",
                               field="port")
    number = body.get("number")
    if isinstance(number, str):
        try:
            await repo_manage.get_line(request.app[DEPS].session_factory, number)
            return problem_details(409, f"number {number} is in use", field="number")
        except ManageError:
            pass
    generated = None
    if "password" not in body:
        generated = body["password"] = secrets.token_urlsafe(12)
    entry["adapters"] = [{"mac": adapter["mac"], "model": adapter["model"], "lines": [body]}]
    report = await _import(request, {"customers": [entry]})
    if isinstance(report, web.Response):
        return report
    await _live(request)
    rep = await repo_manage.get_line(request.app[DEPS].session_factory, str(number))
    out = dict(rep)
    if generated is not None:
        out["password"] = generated
    resp = web.json_response(out, status=201, headers={"ETag": etag_of(rep), "Cache-Control": "no-store",
                                                        "Location": f"/api/v1/lines/{rep['number']}"})
    return resp


@routes.get("/api/v1/lines/{number}")
@require(*STAFF_READ)
async def get_line(request: web.Request) -> web.Response:
    return await _got(request, repo_manage.get_line, "number")


@routes.patch("/api/v1/lines/{number}")
@require(*STAFF_WRITE)
async def patch_line(request: web.Request) -> web.Response:
    """display_name, language, alarm, unlisted, enabled (disabling unregisters it at once)."""
    done = await _changed(request, repo_manage.patch_line, "number")
    if isinstance(done, web.Response):
        return done
    rep, line_id = done
    await _live(request, [line_id] if not rep["enabled"] else [])
    return _one(rep)


@routes.post("/api/v1/lines/{number}/password")
@require(*STAFF_WRITE)
async def reset_password(request: web.Request) -> web.Response:
    """A new SIP password, shown once; it applies to the next REGISTER and the next config fetch."""
    deps = request.app[DEPS]
    try:
        password, _line_id = await repo_manage.reset_line_password(
            deps.session_factory, request.match_info["number"], deps.secret_box, _realm(request),
            actor=_actor(request))
    except ManageError as err:
        return _error(err)
    await _live(request)
    return web.json_response({"number": request.match_info["number"], "password": password},
                             headers={"Cache-Control": "no-store"})


@routes.delete("/api/v1/lines/{number}")
@require(*STAFF_WRITE)
async def delete_line(request: web.Request) -> web.Response:
    line_id = await _changed(request, repo_manage.delete_line, "number", body=False)
    if isinstance(line_id, web.Response):
        return line_id
    await _live(request, [line_id])
    return web.Response(status=204)


# ------------------------------------------------------------------------- tokens


@routes.get("/api/v1/tokens")
@require(ADMIN)
async def list_tokens(request: web.Request) -> web.Response:
    rows = await repo_tokens.list_tokens(request.app[DEPS].session_factory)
    return web.json_response({"items": [t.as_json() for t in rows]})


@routes.post("/api/v1/tokens")
@require(ADMIN)
async def create_token(request: web.Request) -> web.Response:
    """``{"role": "admin" | "support" | "readonly" | "customer", "customer": "C1001", "user": "kari", "label": "..."}``.

    A token for an operator user (``user``) acts with the user's role, so it takes no ``role``;
    the secret is shown once.
    """
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    unknown = set(body) - {"role", "customer", "user", "label"}
    if unknown:
        return problem_details(400, f"{sorted(unknown)[0]}: unknown field", field=sorted(unknown)[0])
    user = body.get("user")
    if user is not None and (not isinstance(user, str) or not user):
        return problem_details(400, "user: the operator user's username", field="user")
    role = body.get("role", TokenRole.ADMIN.value if user is not None else None)
    if role == TokenRole.OPERATOR.value:
        role = TokenRole.ADMIN.value  # the one staff role before roles existed
    if role not in _TOKEN_ROLES:
        return problem_details(400, f"role: must be one of {', '.join(_TOKEN_ROLES)}", field="role")
    if user is not None and role == TokenRole.CUSTOMER.value:
        return problem_details(400, "role: a token for an operator user has the user's role", field="role")
    label = body.get("label", "")
    if not isinstance(label, str) or len(label) > 200:
        return problem_details(400, "label: a string of at most 200 characters", field="label")
    customer = body.get("customer")
    if customer is not None and not isinstance(customer, str):
        return problem_details(400, "customer: the customer number", field="customer")
    if (customer is not None) != (role == TokenRole.CUSTOMER.value):
        return problem_details(400, "customer: a customer token names its customer, and only it does",
                               field="customer")
    try:
        secret, info = await repo_tokens.create_token(
            request.app[DEPS].session_factory, TokenRole(role), customer_ref=customer, username=user,
            label=label)
    except ValueError as err:
        field = "user" if user is not None and "user" in str(err) else "customer"
        return problem_details(404 if str(err).startswith("no ") else 400, str(err), field=field)
    async with write_session(request.app[DEPS].session_factory) as session:
        add_audit_event(session, actor=_actor(request), action="token.create", subject_type="token",
                        subject_id=str(info.token_id), details={"role": info.effective_role, "customer": customer,
                                                                "user": info.username, "label": label})
    return web.json_response({"id": info.token_id, "role": info.effective_role, "customer": info.customer_ref,
                              "user": info.username, "label": label, "token": secret},
                             status=201, headers={"Cache-Control": "no-store"})


@routes.post("/api/v1/tokens/{id}/revoke")
@require(ADMIN)
async def revoke_token(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    token_id = whole_number(raw)
    if token_id is None:
        return problem_details(400, "id: must be a whole number", field="id")
    ok = await repo_tokens.revoke_token(request.app[DEPS].session_factory, token_id)
    if not ok:
        return problem_details(404, f"no live token {raw}")
    request.app[TOKEN_CACHE].clear()  # a revoked token stops working now, not after the cache's 30 s
    return web.json_response({"id": int(raw), "revoked": True})


# ------------------------------------------------------------------------- audit


@routes.get("/api/v1/audit")
@require(*STAFF_READ)
async def audit(request: web.Request) -> web.Response:
    """Newest first; ``subject_type`` + ``subject_id``, ``actor``, ``since``/``until`` (ISO 8601), ``limit`` ≤ 500."""
    try:
        limit = _int_query(request, "limit", 100)
        if not 1 <= limit <= 500:
            raise ManageError(400, "limit", "must be 1..500")
    except ManageError as err:
        return _error(err)
    times: dict[str, datetime | None] = {}
    for name in ("since", "until"):
        raw = request.query.get(name)
        if raw is None:
            times[name] = None
            continue
        try:
            t = datetime.fromisoformat(raw)
        except ValueError:
            return problem_details(400, f"{name}: an ISO 8601 time with a zone, e.g. 2026-12-01T00:00:00+00:00",
                                   field=name)
        if t.tzinfo is None:
            return problem_details(400, f"{name}: needs a time zone", field=name)
        times[name] = t
    st, sid = request.query.get("subject_type"), request.query.get("subject_id")
    if (st is None) != (sid is None):
        return problem_details(400, "subject_type and subject_id go together", field="subject_id")
    rows = await list_audit_events(
        request.app[DEPS].session_factory, subject=(st, sid) if st and sid else None,
        actor=request.query.get("actor"), since=times["since"], until=times["until"], limit=limit)
    return web.json_response({"items": [
        {"at": e.at.isoformat(timespec="seconds"), "actor": e.actor, "action": e.action,
         "subject_type": e.subject_type, "subject_id": e.subject_id, "details": e.details}
        for e in rows
    ]})


# ------------------------------------------------------------------------- numbers


@routes.get("/api/v1/numbers")
@require(*STAFF_READ)
async def list_numbers(request: web.Request) -> web.Response:
    """The operator's numbers; ``state=free`` lists those on no line (e.g. freed by a termination)."""
    return await _listed(request, repo_manage.list_numbers, "state")


@routes.get("/api/v1/numbers/{number}")
@require(*STAFF_READ)
async def get_number(request: web.Request) -> web.Response:
    return await _got(request, repo_manage.get_number, "number")


@routes.patch("/api/v1/numbers/{number}")
@require(*STAFF_WRITE)
async def patch_number(request: web.Request) -> web.Response:
    """``{"unlisted": true}`` keeps the number out of the directory export."""
    rep = await _changed(request, repo_manage.patch_number, "number")
    return rep if isinstance(rep, web.Response) else _one(rep)


@routes.delete("/api/v1/numbers/{number}")
@require(*STAFF_WRITE)
async def delete_number(request: web.Request) -> web.Response:
    done = await _changed(request, repo_manage.delete_number, "number", body=False)
    return done if isinstance(done, web.Response) else web.Response(status=204)


@routes.post("/api/v1/customers/{ref}/portal-password")
@require(*STAFF_WRITE)
async def reset_portal_password(request: web.Request) -> web.Response:
    """A new Min side password for the customer, shown once; its open Min side sessions end."""
    from switch.store import repo_users
    from switch.store.engine import write_session
    from switch.store.repo_audit import add_audit_event

    deps = request.app[DEPS]
    ref = request.match_info["ref"]
    try:
        customer = await repo_manage.get_customer(deps.session_factory, ref)
        password = await repo_users.set_customer_password(deps.session_factory, ref)
    except (ManageError, LookupError):
        return problem_details(404, f"no customer {ref!r}")
    login = await repo_users.authenticate_customer(deps.session_factory, ref, password)
    if login is not None:
        await repo_users.revoke_sessions_of(deps.session_factory, customer_id=login.customer_id)
    async with write_session(deps.session_factory) as session:
        add_audit_event(session, actor=_actor(request), action="customer.portal_password_reset",
                        subject_type="customer", subject_id=customer["id"],
                        customer_id=login.customer_id if login else None)
    return web.json_response({"customer": customer["id"], "password": password}, headers={"Cache-Control": "no-store"})
