"""The operator web UI: login, dashboard, search, customer, adapter and line pages."""

from __future__ import annotations


from aiohttp import web

from switch.store import repo_users
from switch.store.repo_adapters import format_mac, normalise_mac

from ..guards import whole_number
from . import queries
from .deps import UI_DEPS, UiDeps
from .lamps import LAMP_ORDER, lamp_view, needs_attention
from .web import (
    SESSION_KEY,
    language,
    render,
    require_operator,
    safe_next,
)
import provisioning.ui.web as web_flow
from .i18n import translate

routes = web.RouteTableDef()

_ANY = ("admin", "support", "readonly")
_WRITE = ("admin", "support")


@routes.get("/ui")
async def ui_root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/ui/")


@routes.get("/ui/login")
async def login_form(request: web.Request) -> web.StreamResponse:
    return await web_flow.login_form(request, "operator")


@routes.post("/ui/login")
async def login_submit(request: web.Request) -> web.StreamResponse:
    sf = request.app[UI_DEPS].session_factory
    return await web_flow.login_submit(request, "operator", lambda name, pw: repo_users.authenticate_user(sf, name, pw))


@routes.post("/ui/logout")
@require_operator()
async def logout(request: web.Request) -> web.StreamResponse:
    return await web_flow.logout(request, "operator")


@routes.get("/ui/lang/{lang}")
async def set_language(request: web.Request) -> web.StreamResponse:
    lang = request.match_info["lang"]
    target = request.query.get("next", "/ui/")
    audience = "customer" if target.startswith("/min-side/") else "operator"
    resp = web.HTTPFound(safe_next(target, audience))
    if lang in ("nb", "en"):
        resp.set_cookie("ss_lang", lang, samesite="Lax", max_age=365 * 86400, path="/")
    raise resp


@routes.get("/ui/")
@require_operator(*_ANY)
async def dashboard(request: web.Request) -> web.StreamResponse:
    deps: UiDeps = request.app[UI_DEPS]
    counts = await queries.dashboard_counts(deps.session_factory)
    per_minute = await queries.calls_per_minute(deps.session_factory)
    attention = []
    for adapter_id, mac in await queries.adapters(deps.session_factory):
        lamps = deps.lamps(adapter_id)
        bad = needs_attention(lamps)
        if bad:
            attention.append({"mac": mac, "display_mac": format_mac(mac), "lamps": bad})
    alerts = list(getattr(deps.policy, "alerts", lambda: [])()) if deps.policy is not None else []
    return render(
        request, "dashboard.html", counts=counts, registered=deps.registered_lines(),
        in_progress=deps.calls_in_progress(), per_minute=per_minute, peak=max(per_minute + [1]),
        attention=attention[:100], attention_total=len(attention), alerts=alerts[:20],
    )


@routes.get("/ui/price")
@require_operator(*_ANY)
async def price(request: web.Request) -> web.StreamResponse:
    """The price look-up form: the API's ``look_up`` (so the price is the call records' own), shown in words."""
    from provisioning.api.price import PriceProblem, look_up

    deps: UiDeps = request.app[UI_DEPS]
    form = {k: request.query.get(k, "")[:64] for k in ("number", "seconds", "customer", "kind", "at")}
    answer: dict[str, object] | None = None
    error = None
    status = 200
    if form["number"]:
        params = {k: v for k, v in form.items() if v}
        try:
            answer = await look_up(deps.rating, deps.session_factory, params)
        except PriceProblem as err:
            error, status = err.message, err.status
    return render(request, "price.html", status=status, form=form, answer=answer, error=error)


@routes.get("/ui/search")
@require_operator(*_ANY)
async def search(request: web.Request) -> web.StreamResponse:
    deps: UiDeps = request.app[UI_DEPS]
    q = request.query.get("q", "").strip()[:100]
    result = await queries.search(deps.session_factory, q)
    # One unambiguous hit: go straight there, as support staff expect.
    hits = len(result.customers) + len(result.adapters) + len(result.lines)
    if hits == 1:
        if result.customers:
            raise web.HTTPFound(f"/ui/customers/{result.customers[0].external_id}")
        if result.adapters:
            raise web.HTTPFound(f"/ui/adapters/{result.adapters[0].mac}")
        raise web.HTTPFound(f"/ui/lines/{result.lines[0].number}")
    return render(request, "search.html", q=q, result=result, format_mac=format_mac)


@routes.get("/ui/customers/{ref}")
@require_operator(*_ANY)
async def customer(request: web.Request) -> web.StreamResponse:
    return await _customer_page(request, request.match_info["ref"][:64])


def _mac(request: web.Request) -> str | None:
    try:
        return normalise_mac(request.match_info["mac"])
    except ValueError:
        return None


@routes.get("/ui/adapters/{mac}")
@require_operator(*_ANY)
async def adapter(request: web.Request) -> web.StreamResponse:
    return await _adapter_page(request, "adapter.html")


@routes.get("/ui/adapters/{mac}/lamps")
@require_operator(*_ANY)
async def adapter_lamps(request: web.Request) -> web.StreamResponse:
    """The lamps alone: htmx swaps them in every few seconds."""
    return await _adapter_page(request, "_lamps.html")


async def _adapter_page(request: web.Request, template: str, notice: str | None = None) -> web.StreamResponse:
    deps: UiDeps = request.app[UI_DEPS]
    lang = language(request)
    mac = _mac(request)
    found = await queries.adapter_detail(deps.session_factory, mac) if mac else None
    if found is None:
        return render(request, "error.html", status=404, message=translate(lang, "not_found", what=request.match_info["mac"][:40]))
    a, lines, events = found
    lamps = deps.lamps(a.adapter_id)
    views = [lamp_view(n, lamps.get(n)) for n in LAMP_ORDER]
    contacts = {li.line_id: list(deps.bindings(li.line_id)) for li in lines}
    timeline = [
        {
            "lamp": str(getattr(e.lamp, "value", e.lamp)),
            "from": None if e.old_state is None else str(getattr(e.old_state, "value", e.old_state)),
            "to": str(getattr(e.new_state, "value", e.new_state)),
            "reason": e.reason,
            "at": e.at,
        }
        for e in events
    ]
    return render(request, template, a=a, display_mac=format_mac(a.mac), lamps=views, lines=lines,
                  contacts=contacts, timeline=timeline, notice=notice, can_write=_can_write(request),
                  can_resync=deps.resync is not None, can_stage=deps.secret_box is not None)


def _can_write(request: web.Request) -> bool:
    user = request[SESSION_KEY].user
    return user is not None and user.role.value in _WRITE


@routes.post("/ui/adapters/{mac}/resync")
@require_operator(*_WRITE)
async def adapter_resync(request: web.Request) -> web.StreamResponse:
    deps: UiDeps = request.app[UI_DEPS]
    mac = _mac(request)
    if mac is None or deps.resync is None:
        raise web.HTTPNotFound()
    try:
        result = await deps.resync(mac, _actor(request))
    except LookupError as err:
        result = str(err)
    return await _adapter_page(request, "adapter.html", notice=translate(language(request), "resync_sent", result=result))


@routes.get("/ui/adapters/{mac}/staging")
@require_operator(*_WRITE)
async def adapter_staging(request: web.Request) -> web.StreamResponse:
    """What to type into the adapter's own web page to stage it by hand (its URL and credentials)."""
    from switch.store import repo_adapters as ra
    from switch.store.engine import write_session
    from switch.store.repo_audit import add_audit_event

    from ..api.provisioning import staging_values

    deps: UiDeps = request.app[UI_DEPS]
    mac = _mac(request)
    adapter = await ra.get_adapter_by_mac(deps.session_factory, mac) if mac and deps.secret_box else None
    if adapter is None or deps.secret_box is None:
        return render(request, "error.html", status=404,
                      message=translate(language(request), "not_found", what=request.match_info["mac"][:40]))
    origin = f"{request.scheme}://{request.host}"
    try:
        values = await staging_values(deps.session_factory, deps.secret_box, adapter, origin)
    except LookupError as err:
        return render(request, "error.html", status=409, message=str(err))
    async with write_session(deps.session_factory) as session:
        add_audit_event(session, actor=_actor(request), action="adapter.profile_url.read", subject_type="adapter",
                        subject_id=adapter.mac, customer_id=adapter.customer_id)
    return render(request, "staging.html", v=values, mac=adapter.mac)


@routes.get("/ui/lines/{number}")
@require_operator(*_ANY)
async def line(request: web.Request) -> web.StreamResponse:
    return await _line_page(request, _number(request.match_info["number"]))


# ------------------------------------------------------------------ policy editors (line, customer)


def _actor(request: web.Request) -> str:
    user = request[SESSION_KEY].user
    return f"operator:{user.username}" if user is not None else "operator"


def _policy_view(deps: UiDeps, line_id: int) -> dict[str, object]:
    policy = deps.policy
    out: dict[str, object] = {"forwards": {}, "barring": set(), "customer_barring": set()}
    if policy is None:
        return out
    out["forwards"] = {str(r.kind): r for r in policy.forwarding(line_id)}
    lp = policy.state.lines.get(line_id)
    if lp is not None:
        out["barring"] = {str(c) for c in lp.barring}
        cp = policy.state.customers.get(lp.customer_id)
        if cp is not None:
            out["customer_barring"] = {str(c) for c in cp.barring}
    return out


async def _line_page(request: web.Request, number: str, notice: str | None = None, error: str | None = None,
                     status: int = 200) -> web.StreamResponse:
    deps: UiDeps = request.app[UI_DEPS]
    lang = language(request)
    li = await queries.line_by_number(deps.session_factory, number)
    if li is None:
        return render(request, "error.html", status=404, message=translate(lang, "not_found", what=number))
    calls = await queries.line_calls(deps.session_factory, li.line_id)
    from switch.store.models import BarringCategory, ForwardKind

    return render(request, "line.html", status=status, li=li, calls=calls, contacts=list(deps.bindings(li.line_id)),
                  format_mac=format_mac, pol=_policy_view(deps, li.line_id), kinds=[k.value for k in ForwardKind],
                  categories=[c.value for c in BarringCategory], can_write=_can_write(request),
                  has_policy=deps.policy is not None, notice=notice, error=error)


def _number(raw: str) -> str:
    raw = raw[:32]
    return raw if raw.startswith("+") else (f"+47{raw}" if raw.isdigit() and len(raw) == 8 else raw)


@routes.post("/ui/lines/{number}/forwarding/{kind}")
@require_operator(*_WRITE)
async def line_forwarding(request: web.Request) -> web.StreamResponse:
    from switch.services.policy.validate import PolicyValidationError
    from switch.store.models import ForwardKind

    deps: UiDeps = request.app[UI_DEPS]
    number = _number(request.match_info["number"])
    li = await queries.line_by_number(deps.session_factory, number)
    kind = request.match_info["kind"]
    if li is None or deps.policy is None or kind not in {k.value for k in ForwardKind}:
        raise web.HTTPNotFound()
    form = await request.post()
    try:
        if form.get("action") == "delete":
            await deps.policy.clear_forwarding(li.line_id, ForwardKind(kind), _actor(request))
        else:
            raw = str(form.get("timeout_s", "")).strip()
            timeout = whole_number(raw) if kind == "no_answer" else None
            await deps.policy.set_forwarding(li.line_id, ForwardKind(kind), str(form.get("target", "")).strip(),
                                             timeout, _actor(request))
    except PolicyValidationError as err:
        return await _line_page(request, number, error=f"{err.field}: {err.message}", status=400)
    return await _line_page(request, number, notice=translate(language(request), "forwarding") + ": ✓")


@routes.post("/ui/lines/{number}/barring")
@require_operator(*_WRITE)
async def line_barring(request: web.Request) -> web.StreamResponse:
    from switch.store.models import BarringCategory

    deps: UiDeps = request.app[UI_DEPS]
    number = _number(request.match_info["number"])
    li = await queries.line_by_number(deps.session_factory, number)
    if li is None or deps.policy is None:
        raise web.HTTPNotFound()
    form = await request.post()
    known = {c.value for c in BarringCategory}
    chosen = [str(v) for v in form.getall("category", [])]
    if any(c not in known for c in chosen):
        return await _line_page(request, number, error="categories: unknown category", status=400)
    await deps.policy.set_line_barring(li.line_id, frozenset(BarringCategory(c) for c in chosen), _actor(request))
    return await _line_page(request, number, notice=translate(language(request), "barring") + ": ✓")


@routes.post("/ui/customers/{ref}/suspensions")
@require_operator(*_WRITE)
async def customer_suspend(request: web.Request) -> web.StreamResponse:
    from switch.services.policy.validate import PolicyValidationError
    from switch.store.models import SuspensionLevel, SuspensionReason

    deps: UiDeps = request.app[UI_DEPS]
    ref = request.match_info["ref"][:64]
    detail = await queries.customer_detail(deps.session_factory, ref)
    if detail is None or deps.policy is None:
        raise web.HTTPNotFound()
    form = await request.post()
    try:
        level = SuspensionLevel(str(form.get("level", "")))
        reason = SuspensionReason(str(form.get("reason", "")))
    except ValueError:
        return await _customer_page(request, ref, error="level/reason: choose one", status=400)
    note = str(form.get("note", "")).strip()[:1000]
    line_raw = str(form.get("line", "")).strip()
    line_id = None
    if line_raw:
        match = [li for li in detail.lines if li.number == _number(line_raw)]
        if not match:
            return await _customer_page(request, ref, error=f"line: {line_raw} is not a line of {ref}", status=400)
        line_id = match[0].line_id
    try:
        await deps.policy.suspend(detail.customer.customer_id, line_id, level, reason, note, _actor(request))
    except PolicyValidationError as err:
        return await _customer_page(request, ref, error=f"{err.field}: {err.message}", status=400)
    raise web.HTTPFound(f"/ui/customers/{ref}")


@routes.post("/ui/suspensions/{id}/lift")
@require_operator(*_WRITE)
async def suspension_lift(request: web.Request) -> web.StreamResponse:
    deps: UiDeps = request.app[UI_DEPS]
    raw = request.match_info["id"]
    form = await request.post()
    back = str(form.get("back", "/ui/"))
    suspension_id = whole_number(raw)
    if suspension_id is None or deps.policy is None:
        raise web.HTTPNotFound()
    await deps.policy.lift(suspension_id, str(form.get("note", "")).strip()[:1000], _actor(request))
    raise web.HTTPFound(safe_next(back, "operator"))


async def _customer_page(request: web.Request, ref: str, error: str | None = None,
                         status: int = 200) -> web.StreamResponse:
    deps: UiDeps = request.app[UI_DEPS]
    lang = language(request)
    detail = await queries.customer_detail(deps.session_factory, ref)
    if detail is None:
        return render(request, "error.html", status=404, message=translate(lang, "not_found", what=ref))
    from switch.store.models import SuspensionLevel, SuspensionReason

    lamp_rows = {a.adapter_id: [lamp_view(n, deps.lamps(a.adapter_id).get(n)) for n in LAMP_ORDER]
                 for a in detail.adapters}
    registered = {li.line_id: bool(deps.bindings(li.line_id)) for li in detail.lines}
    return render(request, "customer.html", status=status, d=detail, lamp_rows=lamp_rows, registered=registered,
                  format_mac=format_mac, can_write=_can_write(request), has_policy=deps.policy is not None,
                  levels=[x.value for x in SuspensionLevel], reasons=[x.value for x in SuspensionReason], error=error)
