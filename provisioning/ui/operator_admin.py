"""Operator UI pages beyond one customer: unclaimed adapters, bulk import, audit log, and admin pages
(operator users, API tokens, trunks and routes)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select

from switch.services.routing_admin import RoutingAdmin, RoutingChangeError, prefix_of
from switch.store import importer, repo_adapters, repo_tokens, repo_users
from switch.store.adapter_models import MODELS
from switch.store.import_validation import ImportValidationError, parse_import_document
from switch.store.models import Customer, OperatorRole, TokenRole
from switch.store.repo_adapters import format_mac, normalise_mac
from switch.store.repo_audit import add_audit_event, list_audit_events
from switch.store.engine import write_session

from ..guards import MAX_IMPORT, whole_number
from .deps import UI_DEPS, UiDeps
from .i18n import translate
from .web import SESSION_KEY, language, render, require_operator

routes = web.RouteTableDef()

_ANY = ("admin", "support", "readonly")
_WRITE = ("admin", "support")


def _actor(request: web.Request) -> str:
    user = request[SESSION_KEY].user
    return f"operator:{user.username}" if user is not None else "operator"


# ------------------------------------------------------------------ unclaimed adapters


async def _unclaimed_page(request: web.Request, error: str | None = None, status: int = 200) -> web.Response:
    deps: UiDeps = request.app[UI_DEPS]
    rows = await repo_adapters.list_unclaimed(deps.session_factory)
    return render(request, "unclaimed.html", status=status, rows=rows, format_mac=format_mac, models=sorted(MODELS),
                  error=error)


@routes.get("/ui/unclaimed")
@require_operator(*_ANY)
async def unclaimed(request: web.Request) -> web.StreamResponse:
    return await _unclaimed_page(request)


@routes.post("/ui/unclaimed/{mac}/assign")
@require_operator(*_WRITE)
async def assign(request: web.Request) -> web.StreamResponse:
    deps: UiDeps = request.app[UI_DEPS]
    if deps.secret_box is None:
        raise web.HTTPNotFound()
    form = await request.post()
    try:
        mac = normalise_mac(request.match_info["mac"])
    except ValueError:
        raise web.HTTPNotFound() from None
    ref = str(form.get("customer", "")).strip()[:64]
    model = str(form.get("model", "")).strip() or None
    async with deps.session_factory() as session:
        row = (await session.execute(select(Customer.id).where(Customer.external_id == ref))).first()
    if row is None:
        return await _unclaimed_page(request, error=f"customer: {translate(language(request), 'not_found', what=ref)}",
                                     status=400)
    try:
        adapter = await repo_adapters.assign_unclaimed(deps.session_factory, mac, customer_id=row[0],
                                                       secret_box=deps.secret_box, model=model)
    except (LookupError, ValueError) as err:
        return await _unclaimed_page(request, error=str(err), status=400)
    async with write_session(deps.session_factory) as session:
        add_audit_event(session, actor=_actor(request), action="adapter.assign", subject_type="adapter",
                        subject_id=adapter.mac, customer_id=row[0], details={"model": adapter.model})
    raise web.HTTPFound(f"/ui/adapters/{adapter.mac}")


# ------------------------------------------------------------------ bulk import


@routes.get("/ui/import")
@require_operator(*_WRITE)
async def import_form(request: web.Request) -> web.StreamResponse:
    return render(request, "import.html", report=None, issues=[])


@routes.post("/ui/import")
@require_operator(*_WRITE)
async def import_submit(request: web.Request) -> web.StreamResponse:
    """A customer file (YAML or JSON, as `softswitch import`): all of it or nothing, every problem listed."""
    deps: UiDeps = request.app[UI_DEPS]
    if deps.secret_box is None:
        raise web.HTTPNotFound()
    form = await request.post()
    upload = form.get("file")
    text = ""
    name = "upload"
    if upload is not None and hasattr(upload, "file"):
        name = str(getattr(upload, "filename", "upload"))[:100]
        raw = upload.file.read(MAX_IMPORT + 1)
        if len(raw) > MAX_IMPORT:
            return render(request, "import.html", status=413, report=None,
                          issues=[("", f"the file is larger than {MAX_IMPORT // (1024 * 1024)} MiB")])
        text = raw.decode("utf-8", errors="replace")
    elif isinstance(form.get("text"), str):
        text = str(form.get("text"))
    from switch.store.import_validation import _parse_text  # the CLI's own YAML/JSON reader (duplicate keys refused)

    try:
        data = _parse_text(text, name)
        doc = parse_import_document(data, source=name)
        report = await importer.import_document(deps.session_factory, doc, deps.secret_box, deps.realm,
                                                actor=_actor(request))
    except ImportValidationError as err:
        return render(request, "import.html", status=422, report=None,
                      issues=[(i.path, i.message) for i in err.issues])
    except ValueError as err:
        return render(request, "import.html", status=400, report=None, issues=[("", str(err))])
    if deps.after_change is not None:
        await deps.after_change()
    return render(request, "import.html", report=report.summary(), issues=[])


# ------------------------------------------------------------------ audit log


@routes.get("/ui/audit")
@require_operator(*_ANY)
async def audit(request: web.Request) -> web.StreamResponse:
    deps: UiDeps = request.app[UI_DEPS]
    q = request.query
    since = None
    error = None
    if q.get("since"):
        try:
            since = datetime.fromisoformat(q["since"])
            if since.tzinfo is None:
                raise ValueError
        except ValueError:
            error = "since: ISO 8601 with a time zone, e.g. 2026-12-01T00:00:00+00:00"
    st, sid = q.get("subject_type") or None, q.get("subject_id") or None
    rows = await list_audit_events(deps.session_factory, subject=(st, sid) if st and sid else None,
                                   actor=q.get("actor") or None, since=since, limit=200)
    return render(request, "audit.html", rows=rows, q=dict(q), error=error)


# ------------------------------------------------------------------ admin: users, tokens, trunks


@routes.get("/ui/admin/users")
@require_operator("admin")
async def users(request: web.Request) -> web.StreamResponse:
    deps: UiDeps = request.app[UI_DEPS]
    return render(request, "users.html", users=await repo_users.list_users(deps.session_factory),
                  roles=[r.value for r in OperatorRole], created=None, error=None)


@routes.post("/ui/admin/users")
@require_operator("admin")
async def create_user(request: web.Request) -> web.StreamResponse:
    deps: UiDeps = request.app[UI_DEPS]
    form = await request.post()
    created = error = None
    try:
        password, info = await repo_users.create_user(deps.session_factory, str(form.get("username", "")),
                                                      str(form.get("role", "")),
                                                      display_name=str(form.get("display_name", "")))
        created = (info.username, password)
        async with write_session(deps.session_factory) as session:
            add_audit_event(session, actor=_actor(request), action="user.create", subject_type="user",
                            subject_id=info.username, details={"role": info.role.value})
    except ValueError as err:
        error = str(err)
    return render(request, "users.html", status=400 if error else 200,
                  users=await repo_users.list_users(deps.session_factory),
                  roles=[r.value for r in OperatorRole], created=created, error=error)


@routes.post("/ui/admin/users/{username}")
@require_operator("admin")
async def change_user(request: web.Request) -> web.StreamResponse:
    """Disable, enable, change the role, or reset the password (shown once) of an operator user."""
    deps: UiDeps = request.app[UI_DEPS]
    form = await request.post()
    username = request.match_info["username"][:64]
    me = request[SESSION_KEY].user
    action = str(form.get("action", ""))
    created = error = None
    try:
        if me is not None and me.username == username and action in ("disable", "role"):
            raise ValueError("you cannot disable or re-role yourself (another admin can)")
        if action == "disable":
            await repo_users.update_user(deps.session_factory, username, enabled=False, actor=_actor(request))
        elif action == "enable":
            await repo_users.update_user(deps.session_factory, username, enabled=True, actor=_actor(request))
        elif action == "role":
            await repo_users.update_user(deps.session_factory, username, role=OperatorRole(str(form.get("role", ""))),
                                         actor=_actor(request))
        elif action == "reset":
            password = repo_users.generate_password()
            await repo_users.update_user(deps.session_factory, username, new_password=password, actor=_actor(request))
            created = (username, password)
        else:
            raise ValueError(f"unknown action {action!r}")
        if deps.token_revoked is not None:
            deps.token_revoked()  # the user's API tokens follow the change at once
    except LookupError as err:
        error = str(err)
    except ValueError as err:
        error = str(err)
    return render(request, "users.html", status=400 if error else 200,
                  users=await repo_users.list_users(deps.session_factory),
                  roles=[r.value for r in OperatorRole], created=created, error=error)


@routes.get("/ui/admin/tokens")
@require_operator("admin")
async def tokens(request: web.Request) -> web.StreamResponse:
    deps: UiDeps = request.app[UI_DEPS]
    return render(request, "tokens.html", tokens=await repo_tokens.list_tokens(deps.session_factory), created=None,
                  error=None)


@routes.post("/ui/admin/tokens")
@require_operator("admin")
async def create_token(request: web.Request) -> web.StreamResponse:
    deps: UiDeps = request.app[UI_DEPS]
    form = await request.post()
    created = error = None
    role = str(form.get("role", "operator"))
    customer = str(form.get("customer", "")).strip() or None
    try:
        secret, info = await repo_tokens.create_token(deps.session_factory, TokenRole(role), customer_ref=customer,
                                                      label=str(form.get("label", ""))[:200])
        created = secret
        async with write_session(deps.session_factory) as session:
            add_audit_event(session, actor=_actor(request), action="token.create", subject_type="token",
                            subject_id=str(info.token_id), details={"role": role, "customer": customer})
    except ValueError as err:
        error = str(err)
    return render(request, "tokens.html", status=400 if error else 200,
                  tokens=await repo_tokens.list_tokens(deps.session_factory), created=created, error=error)


@routes.post("/ui/admin/tokens/{id}/revoke")
@require_operator("admin")
async def revoke_token(request: web.Request) -> web.StreamResponse:
    deps: UiDeps = request.app[UI_DEPS]
    raw = request.match_info["id"]
    token_id = whole_number(raw)
    if token_id is None:
        raise web.HTTPNotFound()
    if await repo_tokens.revoke_token(deps.session_factory, token_id):
        async with write_session(deps.session_factory) as session:
            add_audit_event(session, actor=_actor(request), action="token.revoke", subject_type="token", subject_id=raw)
        if deps.token_revoked is not None:
            deps.token_revoked()
    raise web.HTTPFound("/ui/admin/tokens")


# ------------------------------------------------------------------ admin: trunks and routes
# The forms turn into the API's own bodies and go through the API's own service (RoutingAdmin):
# the same validation, the same refusals, the same audit events and the same reload of the running switch.

_TRANSPORTS = ("udp", "tcp", "tls")
_ROUTE_CHOICES = 4


def _routing(request: web.Request) -> RoutingAdmin:
    deps: UiDeps = request.app[UI_DEPS]
    if deps.secret_box is None:
        raise web.HTTPNotFound()
    return RoutingAdmin(deps.session_factory, deps.secret_box, deps.routing_reload)


def _refusal(lang: str, err: RoutingChangeError) -> dict[str, str]:
    """The refusal as {field: message in the page's language} (the API's English text when no words exist)."""
    key = f"routing_err_{err.code}"
    try:
        text = translate(lang, key, **err.params)
    except (KeyError, IndexError):
        text = str(err)
    return {err.field or "": text}


def _checked(form: Any, name: str) -> bool:
    return str(form.get(name, "")) in ("on", "true", "1")


def _trunk_body(form: Any, creating: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """A trunk form as the API's JSON body; a port that is not a number is refused here (the API takes ints)."""
    body: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if creating:
        body["name"] = str(form.get("name", "")).strip()[:200]
    for key in ("host", "transport"):
        value = str(form.get(key, "")).strip()[:255]
        if value or creating:
            body[key] = value
    port = str(form.get("port", "")).strip()
    if port:
        if port.isascii() and port.isdigit() and len(port) <= 6:
            body["port"] = int(port)
        else:
            errors["port"] = "routing_err_port"
    username = str(form.get("username", "")).strip()[:200]
    if username or not creating:
        body["username"] = username
    password = str(form.get("password", ""))[:200]
    if password:
        body["password"] = password
    elif not creating and _checked(form, "remove_password"):
        body["password"] = ""
    body["allowed_sources"] = [c for c in re.split(r"[\s,]+", str(form.get("allowed_sources", ""))[:2000]) if c]
    body["emergency"] = _checked(form, "emergency")
    body["enabled"] = _checked(form, "enabled")
    return body, errors


def _form_values(form: Any) -> dict[str, str]:
    """What the admin typed, to show again after a refusal (never the password)."""
    return {k: str(v)[:2000] for k, v in form.items() if k not in ("csrf", "password")}


async def _trunks_page(request: web.Request, *, status: int = 200, notice: str | None = None,
                       errors: dict[str, str] | None = None, which: str = "", values: dict[str, str] | None = None
                       ) -> web.Response:
    admin = _routing(request)
    trunk_rows = await admin.trunks()
    route_rows = await admin.routes()
    values = dict(values or {})
    if not values and which == "" and request.query.get("route"):
        chosen = await admin.route(request.query["route"].strip()[:20])
        if chosen is not None:  # "edit" on a route fills the set-route form with it
            which = "route"
            values = {"prefix": chosen["prefix"], "description": chosen["description"] or "",
                      "enabled": "on" if chosen["enabled"] else ""}
            values |= {f"trunk_{i}": name for i, name in enumerate(chosen["trunks"], 1)}
    choices = max(_ROUTE_CHOICES, max((len(r["trunks"]) for r in route_rows), default=0))
    return render(request, "trunks.html", status=status, trunks=trunk_rows, routes=route_rows, notice=notice,
                  errors=errors or {}, which=which, values=values, transports=_TRANSPORTS, choices=choices)


async def _edit_page(request: web.Request, trunk: dict[str, Any], *, status: int = 200,
                     errors: dict[str, str] | None = None, values: dict[str, str] | None = None) -> web.Response:
    if values is None:
        values = {"host": trunk["host"], "port": str(trunk["port"]), "transport": trunk["transport"],
                  "username": trunk["username"] or "", "allowed_sources": ", ".join(trunk["allowed_sources"]),
                  "emergency": "on" if trunk["emergency"] else "", "enabled": "on" if trunk["enabled"] else ""}
    return render(request, "trunk_edit.html", status=status, trunk=trunk, errors=errors or {}, values=values,
                  transports=_TRANSPORTS)


@routes.get("/ui/admin/trunks")
@require_operator("admin")
async def trunks(request: web.Request) -> web.StreamResponse:
    return await _trunks_page(request)


@routes.post("/ui/admin/trunks")
@require_operator("admin")
async def create_trunk(request: web.Request) -> web.StreamResponse:
    lang = language(request)
    form = await request.post()
    body, errors = _trunk_body(form, creating=True)
    if not errors:
        try:
            created = await _routing(request).create_trunk(body, _actor(request))
        except RoutingChangeError as err:
            return await _trunks_page(request, status=err.status, errors=_refusal(lang, err), which="trunk",
                                      values=_form_values(form))
        return await _trunks_page(request, notice=translate(lang, "trunk_created", name=created["name"]))
    return await _trunks_page(request, status=422, errors={k: translate(lang, v) for k, v in errors.items()},
                              which="trunk", values=_form_values(form))


@routes.get("/ui/admin/trunks/{name}")
@require_operator("admin")
async def edit_trunk(request: web.Request) -> web.StreamResponse:
    trunk = await _routing(request).trunk(request.match_info["name"][:64])
    if trunk is None:
        raise web.HTTPNotFound()
    return await _edit_page(request, trunk)


@routes.post("/ui/admin/trunks/{name}")
@require_operator("admin")
async def update_trunk(request: web.Request) -> web.StreamResponse:
    lang = language(request)
    admin = _routing(request)
    trunk = await admin.trunk(request.match_info["name"][:64])
    if trunk is None:
        raise web.HTTPNotFound()
    form = await request.post()
    body, errors = _trunk_body(form, creating=False)
    if errors:
        return await _edit_page(request, trunk, status=422, errors={k: translate(lang, v) for k, v in errors.items()},
                                values=_form_values(form))
    try:
        changed = await admin.update_trunk(trunk["name"], body, _actor(request))
    except RoutingChangeError as err:
        return await _edit_page(request, trunk, status=err.status, errors=_refusal(lang, err), values=_form_values(form))
    return await _trunks_page(request, notice=translate(lang, "trunk_updated", name=changed["name"]))


@routes.post("/ui/admin/trunks/{name}/delete")
@require_operator("admin")
async def delete_trunk(request: web.Request) -> web.StreamResponse:
    lang = language(request)
    name = request.match_info["name"][:64]
    try:
        await _routing(request).delete_trunk(name, _actor(request))
    except RoutingChangeError as err:
        return await _trunks_page(request, status=err.status, errors=_refusal(lang, err), which="delete")
    return await _trunks_page(request, notice=translate(lang, "trunk_deleted", name=name))


@routes.post("/ui/admin/routes")
@require_operator("admin")
async def set_route(request: web.Request) -> web.StreamResponse:
    """Prefix, trunks in the order of the numbered choices (empty choices skipped), enabled, description."""
    lang = language(request)
    form = await request.post()
    values = _form_values(form)
    picked = [str(form.get(f"trunk_{i}", "")).strip()[:64] for i in range(1, 17)]
    body = {"trunks": [n for n in picked if n], "enabled": _checked(form, "enabled"),
            "description": str(form.get("description", "")).strip()[:200]}
    try:
        prefix = prefix_of(str(form.get("prefix", "")).strip()[:20])
        route, _created = await _routing(request).put_route(prefix, body, _actor(request))
    except RoutingChangeError as err:
        return await _trunks_page(request, status=err.status, errors=_refusal(lang, err), which="route", values=values)
    return await _trunks_page(request, notice=translate(lang, "route_saved", prefix=route["prefix"],
                                                       trunks=" → ".join(route["trunks"])))


@routes.post("/ui/admin/routes/delete")
@require_operator("admin")
async def delete_route(request: web.Request) -> web.StreamResponse:
    lang = language(request)
    form = await request.post()
    try:
        prefix = prefix_of(str(form.get("prefix", "")).strip()[:20])
        await _routing(request).delete_route(prefix, _actor(request))
    except RoutingChangeError as err:
        return await _trunks_page(request, status=err.status, errors=_refusal(lang, err), which="delete")
    return await _trunks_page(request, notice=translate(lang, "route_deleted", prefix=prefix))
