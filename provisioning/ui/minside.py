"""The customer's own page ("Min side"): forwarding, outgoing barring, calls, password.

A customer sees and changes only its own lines: every line in a URL is looked
up *within* the logged-in customer, and another customer's number is a 404
(the page does not tell whether it exists). Changes go through the same
policy service, with the same validation and messages, as the operator API,
and are audited as ``customer:<customer number>``.
"""

from __future__ import annotations

import csv
import io

from aiohttp import web

from switch.store import repo_users
from switch.store.models import BarringCategory, ForwardKind

from ..guards import whole_number
from . import queries
from .deps import UI_DEPS, UiDeps
import provisioning.ui.web as web_flow
from .i18n import translate, translate_cause
from .web import (
    SESSION_KEY,
    language,
    render,
    require_customer,
    set_session_cookie,
)

routes = web.RouteTableDef()

KINDS = [k.value for k in ForwardKind]
CATEGORIES = [c.value for c in BarringCategory]


def _page(request: web.Request, template: str, status: int = 200, **ctx: object) -> web.Response:
    return render(request, template, audience="customer", status=status, **ctx)


@routes.get("/min-side")
async def root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/min-side/")


@routes.get("/min-side/login")
async def login_form(request: web.Request) -> web.StreamResponse:
    return await web_flow.login_form(request, "customer")


@routes.post("/min-side/login")
async def login_submit(request: web.Request) -> web.StreamResponse:
    sf = request.app[UI_DEPS].session_factory
    return await web_flow.login_submit(request, "customer",
                                       lambda ref, pw: repo_users.authenticate_customer(sf, ref, pw))


@routes.post("/min-side/logout")
@require_customer
async def logout(request: web.Request) -> web.StreamResponse:
    return await web_flow.logout(request, "customer")


def _customer_id(request: web.Request) -> int:
    c = request[SESSION_KEY].customer
    assert c is not None
    return c.customer_id


async def _own_lines(request: web.Request) -> list[queries.LineRow]:
    deps: UiDeps = request.app[UI_DEPS]
    c = request[SESSION_KEY].customer
    assert c is not None
    detail = await queries.customer_detail(deps.session_factory, c.external_id)
    return [] if detail is None else detail.lines


async def _own_line(request: web.Request) -> queries.LineRow | None:
    number = request.match_info["number"]
    for li in await _own_lines(request):
        if li.number == number or li.number == "+47" + number:
            return li
    return None


def _line_settings(deps: UiDeps, li: queries.LineRow) -> dict[str, object]:
    forwards: dict[str, object] = {}
    barring: set[str] = set()
    customer_barring: set[str] = set()
    policy = deps.policy
    if policy is not None:
        for rule in policy.forwarding(li.line_id):
            forwards[str(rule.kind)] = rule
        lp = policy.state.lines.get(li.line_id)
        if lp is not None:
            barring = {str(c) for c in lp.barring}
            cp = policy.state.customers.get(lp.customer_id)
            if cp is not None:
                customer_barring = {str(c) for c in cp.barring}
    return {"forwards": forwards, "barring": barring, "customer_barring": customer_barring}


async def _index(request: web.Request, notice: str | None = None, error: str | None = None,
                 status: int = 200) -> web.Response:
    deps: UiDeps = request.app[UI_DEPS]
    lines = await _own_lines(request)
    settings = {li.line_id: _line_settings(deps, li) for li in lines}
    return _page(request, "minside.html", status=status, lines=lines, settings=settings, kinds=KINDS,
                 categories=CATEGORIES, notice=notice, error=error, has_policy=deps.policy is not None)


@routes.get("/min-side/")
@require_customer
async def index(request: web.Request) -> web.StreamResponse:
    return await _index(request)


def _actor(request: web.Request) -> str:
    c = request[SESSION_KEY].customer
    assert c is not None
    return f"customer:{c.external_id}"


@routes.post("/min-side/lines/{number}/forwarding/{kind}")
@require_customer
async def set_forwarding(request: web.Request) -> web.StreamResponse:
    deps: UiDeps = request.app[UI_DEPS]
    li = await _own_line(request)
    kind = request.match_info["kind"]
    if li is None or kind not in KINDS or deps.policy is None:
        raise web.HTTPNotFound()
    form = await request.post()
    from switch.services.policy.validate import PolicyValidationError

    if form.get("action") == "delete":
        await deps.policy.clear_forwarding(li.line_id, ForwardKind(kind), _actor(request))
        return await _index(request, notice=translate(language(request), "forwarding") + ": ✓")
    raw_timeout = str(form.get("timeout_s", "")).strip()
    timeout: int | None = None
    if raw_timeout:
        timeout = whole_number(raw_timeout)
        if timeout is None:
            return await _index(request, error="timeout_s: must be a whole number of seconds", status=400)
    try:
        await deps.policy.set_forwarding(li.line_id, ForwardKind(kind), str(form.get("target", "")).strip(),
                                         timeout if kind == "no_answer" else None, _actor(request))
    except PolicyValidationError as err:
        return await _index(request, error=f"{err.field}: {err.message}", status=400)
    return await _index(request, notice=translate(language(request), "forwarding") + ": ✓")


@routes.post("/min-side/lines/{number}/barring")
@require_customer
async def set_barring(request: web.Request) -> web.StreamResponse:
    deps: UiDeps = request.app[UI_DEPS]
    li = await _own_line(request)
    if li is None or deps.policy is None:
        raise web.HTTPNotFound()
    form = await request.post()
    chosen = [str(v) for v in form.getall("category", [])]
    unknown = [c for c in chosen if c not in CATEGORIES]
    if unknown:
        return await _index(request, error=f"categories: unknown {', '.join(unknown)}", status=400)
    await deps.policy.set_line_barring(li.line_id, frozenset(BarringCategory(c) for c in chosen), _actor(request))
    return await _index(request, notice=translate(language(request), "barring") + ": ✓")


@routes.get("/min-side/calls")
@require_customer
async def calls(request: web.Request) -> web.StreamResponse:
    deps: UiDeps = request.app[UI_DEPS]
    lines = await _own_lines(request)
    per_line = {li.number: await queries.line_calls(deps.session_factory, li.line_id, limit=200) for li in lines}
    return _page(request, "minside_calls.html", per_line=per_line)


@routes.get("/min-side/calls.csv")
@require_customer
async def calls_csv(request: web.Request) -> web.StreamResponse:
    """Streamed: a row at a time, however long the list.

    Why a call ended is in words in the customer's language (``cause_text``, as on the page), beside the
    stored ``cause`` code and the ``support_code`` the page tells the customer to give customer service.
    Starts with a byte-order mark, which is how Excel (the customers' spreadsheet) knows it is UTF-8.
    """
    deps: UiDeps = request.app[UI_DEPS]
    lang = language(request)
    resp = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": 'attachment; filename="samtaler.csv"',
        "Cache-Control": "no-store",
    })
    await resp.prepare(request)
    buf = io.StringIO()
    buf.write("\ufeff")  # a UTF-8 byte-order mark: without it Excel reads the file as Windows-1252 and garbles æøå
    w = csv.writer(buf)
    w.writerow(["line", "time", "direction", "from", "dialled", "duration_s", "price_ore", "cause", "cause_text",
                "support_code", "forwarded_from"])
    for li in await _own_lines(request):
        for c in await queries.line_calls(deps.session_factory, li.line_id, limit=10_000):
            w.writerow([li.number, c.setup_at.isoformat(timespec="seconds"), c.direction, c.calling_number,
                        c.dialled, c.duration_s, "" if c.price_ore is None else c.price_ore, c.cause or "",
                        translate_cause(lang, c.cause), c.support_code or "", c.forwarded_from or ""])
            if buf.tell() > 16_384:
                await resp.write(buf.getvalue().encode())
                buf.seek(0)
                buf.truncate()
    await resp.write(buf.getvalue().encode())
    await resp.write_eof()
    return resp


@routes.get("/min-side/password")
@require_customer
async def password_form(request: web.Request) -> web.StreamResponse:
    changed = request.query.get("changed") == "1"
    return _page(request, "minside_password.html", error=None,
                 notice=translate(language(request), "password_changed") if changed else None)


@routes.post("/min-side/password")
@require_customer
async def password_change(request: web.Request) -> web.StreamResponse:
    deps: UiDeps = request.app[UI_DEPS]
    form = await request.post()
    c = request[SESSION_KEY].customer
    assert c is not None
    current = str(form.get("current", ""))
    new = str(form.get("new", ""))
    if await repo_users.authenticate_customer(deps.session_factory, c.external_id, current) is None:
        return _page(request, "minside_password.html", status=400, notice=None,
                     error=translate(language(request), "login_failed"))
    if new != str(form.get("repeat", "")):
        return _page(request, "minside_password.html", status=400, notice=None, error="repeat: ≠")
    try:
        await repo_users.set_customer_password(deps.session_factory, c.external_id, new)
    except ValueError as err:
        return _page(request, "minside_password.html", status=400, notice=None, error=f"new: {err}")
    await repo_users.revoke_sessions_of(deps.session_factory, customer_id=c.customer_id)
    secret, _ = await repo_users.create_session(deps.session_factory, customer=c, remote_addr=request.remote or "")
    resp = web.HTTPFound("/min-side/password?changed=1")  # a fresh page: the new session has its own CSRF token
    set_session_cookie(request, resp, "customer", secret)
    raise resp
