"""Operator and customer API: forwarding, barring, suspensions, fraud limits and alerts.

Every change goes through ``PolicyService`` (the same validation as the
engine and star codes, written with its audit event, applied to the very
next INVITE). Errors name the field: 400 for a body that is not what the
route takes, 422 for a value the policy refuses, 404 for an unknown line,
customer or suspension; nothing is changed on error.

A customer token (role ``customer``) may read a line's policy and set its
forwarding and barring, for its own lines only; every other route needs a
staff token (``support`` or ``admin`` to change, ``readonly`` to read).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from switch.services.policy.service import PolicyService
from switch.services.policy.validate import (
    PolicyValidationError,
    validate_categories,
    validate_kind,
    validate_level,
    validate_reason,
)
from switch.store import repo_policy
from switch.store.models import BarringCategory
from switch.store.repo_lines import normalise_number
from switch.store.repo_policy import LineRef

from ..auth import CUSTOMER, PRINCIPAL, STAFF_READ, STAFF_WRITE, Principal, require
from ..errors import problem_details
from ..guards import whole_number
from ..keys import DEPS

routes = web.RouteTableDef()


def _policy(request: web.Request) -> PolicyService:
    service = request.app[DEPS].policy
    if not isinstance(service, PolicyService):
        raise web.HTTPServiceUnavailable(text="the call policy is not running")
    return service


def actor_of(p: Principal) -> str:
    """``operator:<user>`` (``operator:token-<id>`` for a token of no user) or ``customer:<external id>``."""
    if p.role == CUSTOMER:
        return f"customer:{p.customer}"
    return f"operator:{p.username}" if p.username is not None else f"operator:token-{p.token_id}"


async def _line(request: web.Request) -> LineRef | web.Response:
    """The line in the path, if the caller may touch it (a customer only its own)."""
    raw = request.match_info["number"]
    try:
        e164 = normalise_number(raw)
    except ValueError:
        return problem_details(400, f"not a telephone number: {raw!r} (8-digit national or E.164)", field="number")
    ref = await repo_policy.line_by_number(request.app[DEPS].session_factory, e164)
    principal = request[PRINCIPAL]
    if ref is None or (principal.role == CUSTOMER and principal.customer != ref.customer_ref):
        # The same answer for another customer's line: a customer token learns nothing about it.
        return problem_details(404, f"no line has the number {e164}", field="number")
    return ref


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return problem_details(400, "the body must be a JSON object")
    if not isinstance(body, dict):
        return problem_details(400, "the body must be a JSON object")
    return body


def _refused(err: PolicyValidationError) -> web.Response:
    return problem_details(422, err.message, field=err.field)


async def _customer(request: web.Request) -> tuple[int, str] | web.Response:
    ref = request.match_info["id"]
    found = await repo_policy.customer_by_ref(request.app[DEPS].session_factory, ref)
    if found is None:
        return problem_details(404, f"no customer {ref!r}", field="customer")
    return found


def _rule_json(rule: Any) -> dict[str, Any]:
    return {"kind": rule.kind.value, "target": rule.target, "timeout_s": rule.timeout_s}


@routes.get("/api/v1/lines/{number}/policy")
@require(*STAFF_READ, CUSTOMER)
async def line_policy(request: web.Request) -> web.Response:
    """Forwarding, barring (line and customer), active suspensions, fraud limits and counters of a line."""
    ref = await _line(request)
    if isinstance(ref, web.Response):
        return ref
    ps = _policy(request)
    lp = ps.state.lines.get(ref.line_id)
    cp = ps.state.customers.get(ref.customer_id)
    suspensions = [s for s in ps.active_suspensions(ref.customer_id) if s.line_id in (None, ref.line_id)]
    body: dict[str, Any] = {
        "number": ref.number,
        "customer": ref.customer_ref,
        "forwarding": [_rule_json(r) for r in ps.forwarding(ref.line_id)],
        "barring": {
            "line": sorted(c.value for c in (lp.barring if lp else ())),
            "customer": sorted(c.value for c in (cp.barring if cp else ())),
        },
        "suspensions": [
            {"id": s.id, "scope": "line" if s.line_id is not None else "customer", "level": s.level.value,
             "reason": s.reason.value}
            for s in suspensions
        ],
        "fraud": {
            "limits": ps.limits(ref.customer_id).as_json(),
            "calls_in_progress": {"line": ps.calls_on_line.get(ref.line_id, 0),
                                  "customer": ps.calls_of_customer.get(ref.customer_id, 0)},
            "attempts_last_hour": ps.attempts_last_hour(ref.line_id),
        },
    }
    return web.json_response(body)


@routes.put("/api/v1/lines/{number}/forwarding/{kind}")
@require(*STAFF_WRITE, CUSTOMER)
async def put_forwarding(request: web.Request) -> web.Response:
    """``{"target": "22000003", "timeout_s": 20}``; ``timeout_s`` for ``no_answer`` only (5-120, default 20)."""
    ref = await _line(request)
    if isinstance(ref, web.Response):
        return ref
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    unknown = set(body) - {"target", "timeout_s"}
    if unknown:
        return problem_details(400, f"unknown field(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    ps = _policy(request)
    try:
        kind = validate_kind(request.match_info["kind"])
        rule = await ps.set_forwarding(ref.line_id, kind, body.get("target"), body.get("timeout_s"),  # type: ignore[arg-type]
                                       actor_of(request[PRINCIPAL]))
    except PolicyValidationError as err:
        if err.field == "kind":
            return problem_details(404, err.message, field="kind")
        return _refused(err)
    return web.json_response({"number": ref.number, **_rule_json(rule)})


@routes.delete("/api/v1/lines/{number}/forwarding/{kind}")
@require(*STAFF_WRITE, CUSTOMER)
async def delete_forwarding(request: web.Request) -> web.Response:
    ref = await _line(request)
    if isinstance(ref, web.Response):
        return ref
    try:
        kind = validate_kind(request.match_info["kind"])
    except PolicyValidationError as err:
        return problem_details(404, err.message, field="kind")
    removed = await _policy(request).clear_forwarding(ref.line_id, kind, actor_of(request[PRINCIPAL]))
    if not removed:
        return problem_details(404, f"{ref.number} has no {kind.value} forwarding", field="kind")
    return web.json_response({"number": ref.number, "removed": removed})


async def _categories(request: web.Request) -> frozenset[BarringCategory] | web.Response:
    """The body ``{"categories": [...]}`` of both barring routes, validated (the whole set; ``[]`` clears)."""
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    if "categories" not in body:
        return problem_details(400, "categories is required (a list; [] clears)", field="categories")
    try:
        return validate_categories(body["categories"])
    except PolicyValidationError as err:
        return _refused(err)


@routes.put("/api/v1/lines/{number}/barring")
@require(*STAFF_WRITE, CUSTOMER)
async def put_line_barring(request: web.Request) -> web.Response:
    """``{"categories": ["international", "premium"]}``: the whole set (``[]`` clears)."""
    ref = await _line(request)
    if isinstance(ref, web.Response):
        return ref
    categories = await _categories(request)
    if isinstance(categories, web.Response):
        return categories
    await _policy(request).set_line_barring(ref.line_id, categories, actor_of(request[PRINCIPAL]))
    return web.json_response({"number": ref.number, "categories": sorted(c.value for c in categories)})


@routes.put("/api/v1/customers/{id}/barring")
@require(*STAFF_WRITE)
async def put_customer_barring(request: web.Request) -> web.Response:
    """Barring categories for every line of the customer (the whole set; ``[]`` clears)."""
    found = await _customer(request)
    if isinstance(found, web.Response):
        return found
    categories = await _categories(request)
    if isinstance(categories, web.Response):
        return categories
    cid, ref = found
    await _policy(request).set_customer_barring(cid, ref, categories, actor_of(request[PRINCIPAL]))
    return web.json_response({"customer": ref, "categories": sorted(c.value for c in categories)})


@routes.put("/api/v1/customers/{id}/fraud-limits")
@require(*STAFF_WRITE)
async def put_fraud_limits(request: web.Request) -> web.Response:
    """``{"calls_per_line": 4, ...}``: the customer's own limits; omitted ones go back to the default."""
    found = await _customer(request)
    if isinstance(found, web.Response):
        return found
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    cid, ref = found
    try:
        limits = await _policy(request).set_fraud_limits(cid, ref, body, actor_of(request[PRINCIPAL]))
    except PolicyValidationError as err:
        return _refused(err)
    return web.json_response({"customer": ref, "limits": limits.as_json()})


@routes.post("/api/v1/suspensions")
@require(*STAFF_WRITE)
async def create_suspension(request: web.Request) -> web.Response:
    """``{"customer": "C1001", "line": "22000001" (optional), "level": "soft"|"hard", "reason": "unpaid", "note": "..."}``."""
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    unknown = set(body) - {"customer", "line", "level", "reason", "note"}
    if unknown:
        return problem_details(400, f"unknown field(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    sf = request.app[DEPS].session_factory
    if not isinstance(body.get("customer"), str):
        return problem_details(400, "customer is required: the customer number, e.g. \"C1001\"", field="customer")
    note = body.get("note", "")
    if not isinstance(note, str) or len(note) > 2000:
        return problem_details(400, "note must be text of at most 2000 characters", field="note")
    try:
        level = validate_level(body.get("level"))
        reason = validate_reason(body.get("reason"))
    except PolicyValidationError as err:
        return _refused(err)
    found = await repo_policy.customer_by_ref(sf, body["customer"])
    if found is None:
        return problem_details(404, f"no customer {body['customer']!r}", field="customer")
    cid, _ref = found
    line_id: int | None = None
    line_number: str | None = None
    if body.get("line") is not None:
        try:
            e164 = normalise_number(str(body["line"]))
        except ValueError:
            return problem_details(400, f"not a telephone number: {body['line']!r}", field="line")
        line = await repo_policy.line_by_number(sf, e164)
        if line is None:
            return problem_details(404, f"no line has the number {e164}", field="line")
        if line.customer_id != cid:
            return problem_details(422, f"line {e164} does not belong to customer {body['customer']}", field="line")
        line_id, line_number = line.line_id, line.number
    try:
        sid = await _policy(request).suspend(cid, line_id, level, reason, note, actor_of(request[PRINCIPAL]))
    except PolicyValidationError as err:
        return _refused(err)
    # the stored line (E.164), not the body's spelling of it (which may be a JSON number or the national form)
    return web.json_response({"id": sid, "customer": body["customer"], "line": line_number, "level": level.value,
                              "reason": reason.value}, status=201)


@routes.post("/api/v1/suspensions/{id}/lift")
@require(*STAFF_WRITE)
async def lift_suspension(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    suspension_id = whole_number(raw)
    if suspension_id is None:
        return problem_details(404, f"no suspension {raw!r}", field="id")
    body = await _body(request) if request.body_exists else {}  # not can_read_body: a guard may have read it already
    if isinstance(body, web.Response):
        return body
    note = body.get("note", "")
    if not isinstance(note, str) or len(note) > 2000:
        return problem_details(400, "note must be text of at most 2000 characters", field="note")
    row = await _policy(request).lift(suspension_id, note, actor_of(request[PRINCIPAL]))
    if row is None:
        return problem_details(404, f"no suspension {raw}", field="id")
    numbers = {li.line_id: li.number for li in request.app[DEPS].lines.by_id.values()}
    return web.json_response(row.as_json(numbers))  # a line suspension names its line, as in the history


@routes.get("/api/v1/customers/{id}/suspensions")
@require(*STAFF_READ)
async def customer_suspensions(request: web.Request) -> web.Response:
    """Every suspension of the customer, newest first, lifted ones included (rows are never deleted)."""
    found = await _customer(request)
    if isinstance(found, web.Response):
        return found
    cid, ref = found
    deps = request.app[DEPS]
    rows = await repo_policy.suspension_history(deps.session_factory, cid)
    numbers = {li.line_id: li.number for li in deps.lines.by_id.values()}
    return web.json_response({"customer": ref, "suspensions": [r.as_json(numbers) for r in rows]})


@routes.get("/api/v1/alerts")
@require(*STAFF_READ)
async def alerts(request: web.Request) -> web.Response:
    """Operator alerts raised by the fraud guard, newest first (the last 500 since start)."""
    return web.json_response({"alerts": _policy(request).alerts()})
