"""Operator UI pages beyond one customer: unclaimed adapters, bulk import, audit log, and admin pages
(operator users, API tokens, trunks and routes)."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from sqlalchemy import select

from switch.store import importer, repo_adapters, repo_tokens, repo_users
from switch.store.adapter_models import MODELS
from switch.store.import_validation import ImportValidationError, parse_import_document
from switch.store.models import Customer, OperatorRole, TokenRole
from switch.store.repo_adapters import format_mac, normalise_mac
from switch.store.repo_audit import add_audit_event, list_audit_events
from switch.store.engine import write_session

from .deps import UI_DEPS, UiDeps
from .i18n import translate
from .web import SESSION_KEY, language, render, require_operator

routes = web.RouteTableDef()

_ANY = ("admin", "support", "readonly")
_WRITE = ("admin", "support")
MAX_IMPORT = 5 * 1024 * 1024


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
    if not raw.isdigit():
        raise web.HTTPNotFound()
    if await repo_tokens.revoke_token(deps.session_factory, int(raw)):
        async with write_session(deps.session_factory) as session:
            add_audit_event(session, actor=_actor(request), action="token.revoke", subject_type="token", subject_id=raw)
        if deps.token_revoked is not None:
            deps.token_revoked()
    raise web.HTTPFound("/ui/admin/tokens")


@routes.get("/ui/admin/trunks")
@require_operator("admin")
async def trunks(request: web.Request) -> web.StreamResponse:
    deps: UiDeps = request.app[UI_DEPS]
    from switch.store.models import Route, RouteTrunk, Trunk

    async with deps.session_factory() as session:
        trunk_rows = list((await session.execute(select(Trunk).order_by(Trunk.name))).scalars())
        names = {t.id: t.name for t in trunk_rows}
        route_rows = list((await session.execute(select(Route).order_by(Route.prefix))).scalars())
        order = (await session.execute(select(RouteTrunk).order_by(RouteTrunk.route_id, RouteTrunk.position))).scalars()
        by_route: dict[int, list[str]] = {}
        for rt in order:
            by_route.setdefault(rt.route_id, []).append(names.get(rt.trunk_id, "?"))
    return render(request, "trunks.html", trunks=trunk_rows, routes=route_rows, by_route=by_route)
