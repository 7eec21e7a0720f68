"""Operator and customer API: invoice specification, period summary, termination candidates, directory export.

The invoice specification is streamed straight from the database into the
response (JSON or CSV), so a business customer's year of calls is never
held in memory. A customer token sees its own customer only.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from aiohttp import web

from switch.services.rating.periods import MonthlyPeriods
from switch.store.models import SuspensionReason
from switch.store.repo_billing import (
    credit_limit_of,
    customer_line_ids,
    customer_ref,
    directory_listing,
    inactive_lines,
    invoice_summary,
    period_totals,
    set_credit_limit,
    stream_invoice_lines,
)
from switch.store.repo_lines import normalise_number

from ..auth import CUSTOMER, PRINCIPAL, STAFF_READ, STAFF_WRITE, require
from ..errors import problem_details
from ..guards import whole_number
from ..keys import DEPS

routes = web.RouteTableDef()

_PERIOD_RE = re.compile(r"(\d{4})-(\d{2})")
_INVOICE_FIELDS = ("time", "line", "dialled", "zone", "duration_s", "price_ore", "forwarded_from")


def _periods(request: web.Request) -> MonthlyPeriods:
    return MonthlyPeriods(request.app[DEPS].config.billing_timezone)


def _period(request: web.Request) -> tuple[str, datetime, datetime] | web.Response:
    """``period=YYYY-MM`` (a calendar month in the billing time zone), default the current one."""
    periods = _periods(request)
    raw = request.query.get("period")
    if raw is None:
        start, end = periods.bounds(datetime.now(UTC).timestamp())
    else:
        m = _PERIOD_RE.fullmatch(raw)
        if m is None or not 1 <= int(m.group(2)) <= 12 or not 2000 <= int(m.group(1)) <= 2999:
            return problem_details(400, f"period must be a month as YYYY-MM (e.g. 2026-11), got {raw!r}")
        local = datetime(int(m.group(1)), int(m.group(2)), 15, 12, tzinfo=periods.tz)
        start, end = periods.bounds(local.timestamp())
    label = start.astimezone(periods.tz).strftime("%Y-%m")
    return label, start, end


async def _scope(request: web.Request) -> tuple[int, str, str, list[int]] | web.Response:
    """(customer id, customer number, name, line ids) the request may see."""
    external = request.match_info["customer"]
    principal = request[PRINCIPAL]
    if principal.role == CUSTOMER and principal.customer != external:
        return problem_details(403, "a customer token can only read its own customer's invoice")
    sf = request.app[DEPS].session_factory
    found = await customer_ref(sf, external)
    if found is None:
        return problem_details(404, f"no customer with number {external!r}")
    customer_id, name = found
    number = None
    raw_line = request.query.get("line")
    if raw_line is not None:
        try:
            number = normalise_number(raw_line)
        except ValueError:
            return problem_details(400, f"line must be a telephone number (8-digit national or E.164), "
                                        f"got {raw_line!r}")
    line_ids = await customer_line_ids(sf, customer_id, number)
    if number is not None and not line_ids:
        return problem_details(404, f"customer {external} has no line with the number {number}")
    return customer_id, external, name, line_ids


def _format(request: web.Request, default: str) -> str | web.Response:
    """``format=json|csv`` of the report and invoice routes; anything else is a 400 naming the parameter."""
    fmt = request.query.get("format", default)
    if fmt not in ("json", "csv"):
        return problem_details(400, f"format must be json or csv, got {fmt!r}", field="format")
    return fmt


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="seconds")


@routes.get("/api/v1/customers/{customer}/invoice")
@require(*STAFF_READ, CUSTOMER)
async def invoice(request: web.Request) -> web.StreamResponse:
    """Every billed call of the customer (or ``line=``) in ``period=YYYY-MM``, oldest first; ``format=csv``."""
    period = _period(request)
    if isinstance(period, web.Response):
        return period
    scope = await _scope(request)
    if isinstance(scope, web.Response):
        return scope
    fmt = _format(request, "json")
    if isinstance(fmt, web.Response):
        return fmt
    label, start, end = period
    _cid, external, name, line_ids = scope
    sf = request.app[DEPS].session_factory
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8" if fmt == "csv" else "application/json",
            **({"Content-Disposition": f'attachment; filename="invoice-{external}-{label}.csv"'} if fmt == "csv" else {}),
        }
    )
    await resp.prepare(request)
    calls = stream_invoice_lines(sf, line_ids, start, end)
    if fmt == "csv":
        await _write_csv(resp, calls)
    else:
        await _write_json(resp, calls, {"customer": external, "name": name, "period": label,
                                        "from": _iso(start), "to": _iso(end)})
    await resp.write_eof()
    return resp


async def _write_csv(resp: web.StreamResponse, calls: AsyncIterator[object]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(_INVOICE_FIELDS)
    n = 0
    async for c in calls:
        w.writerow(_row(c))
        n += 1
        if n % 200 == 0:
            await resp.write(buf.getvalue().encode())
            buf.seek(0)
            buf.truncate()
    await resp.write(buf.getvalue().encode())


def _row(c: object) -> list[object]:
    d = _call(c)
    return ["" if d[f] is None else d[f] for f in _INVOICE_FIELDS]


def _call(c: object) -> dict[str, object]:
    from switch.store.repo_billing import InvoiceLine

    assert isinstance(c, InvoiceLine)
    return {
        "time": _iso(c.setup_at),
        "line": c.line_number,
        "dialled": c.dialled,
        "zone": c.zone,
        "duration_s": c.duration_s,
        "price_ore": c.price_ore,
        "forwarded_from": c.forwarded_from,
    }


async def _write_json(resp: web.StreamResponse, calls: AsyncIterator[object], head: dict[str, object]) -> None:
    total_ore = count = 0
    await resp.write(json.dumps(head)[:-1].encode() + b', "calls": [')
    chunk: list[str] = []
    async for c in calls:
        d = _call(c)
        total_ore += int(d["price_ore"])  # type: ignore[call-overload]
        chunk.append(json.dumps(d, ensure_ascii=False))
        count += 1
        if len(chunk) >= 200:
            await resp.write(((", " if count > len(chunk) else "") + ", ".join(chunk)).encode())
            chunk = []
    if chunk:
        await resp.write(((", " if count > len(chunk) else "") + ", ".join(chunk)).encode())
    await resp.write(f'], "count": {count}, "total_ore": {total_ore}}}'.encode())


@routes.get("/api/v1/customers/{customer}/invoice/summary")
@require(*STAFF_READ, CUSTOMER)
async def invoice_period_summary(request: web.Request) -> web.StreamResponse:
    """Per zone: calls, minutes and amount in ``period=YYYY-MM``, with the totals."""
    period = _period(request)
    if isinstance(period, web.Response):
        return period
    scope = await _scope(request)
    if isinstance(scope, web.Response):
        return scope
    label, start, end = period
    _cid, external, name, line_ids = scope
    rows = await invoice_summary(request.app[DEPS].session_factory, line_ids, start, end)
    zones = [
        {"zone": z, "calls": n, "seconds": s, "minutes": round(s / 60, 2), "amount_ore": o} for z, n, s, o in rows
    ]
    return web.json_response({
        "customer": external, "name": name, "period": label, "from": _iso(start), "to": _iso(end),
        "zones": zones,
        "calls": sum(r[1] for r in rows),
        "minutes": round(sum(r[2] for r in rows) / 60, 2),
        "amount_ore": sum(r[3] for r in rows),
    })


@routes.get("/api/v1/reports/inactive-lines")
@require(*STAFF_READ)
async def report_inactive_lines(request: web.Request) -> web.StreamResponse:
    """Termination candidates: lines with no outgoing and no answered call for ``months=`` (default 6)."""
    raw = request.query.get("months", "6")
    months = whole_number(raw, 120)
    if not months:
        return problem_details(400, f"months must be a whole number from 1 to 120, got {raw!r}", field="months")
    fmt = _format(request, "json")
    if isinstance(fmt, web.Response):
        return fmt
    cutoff = datetime.now(UTC) - timedelta(days=round(months * 365.25 / 12))
    found = await inactive_lines(request.app[DEPS].session_factory, cutoff)
    items = [
        {
            "number": r.number, "customer": r.customer, "customer_name": r.customer_name,
            "line_created_at": _iso(r.line_created_at),
            "last_outgoing_at": None if r.last_outgoing_at is None else _iso(r.last_outgoing_at),
            "last_answered_at": None if r.last_answered_at is None else _iso(r.last_answered_at),
        }
        for r in found
    ]
    if fmt == "csv":
        fields = ("number", "customer", "customer_name", "line_created_at", "last_outgoing_at", "last_answered_at")
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(fields)
        for item in items:
            w.writerow(["" if item[f] is None else item[f] for f in fields])
        return web.Response(text=buf.getvalue(), content_type="text/csv",
                            headers={"Content-Disposition": 'attachment; filename="inactive-lines.csv"'})
    return web.json_response({"months": int(raw), "cutoff": _iso(cutoff), "lines": items})


@routes.get("/api/v1/reports/directory")
@require(*STAFF_READ)
async def report_directory(request: web.Request) -> web.StreamResponse:
    """The directory listing export (CSV, or ``format=json``): listed numbers with name and postal address.

    Street, postcode and city are columns of their own in the CSV (empty when not recorded): a directory
    service imports them as fields. The JSON gives the address as the customer's ``address`` object, or null.
    """
    fmt = _format(request, "csv")
    if isinstance(fmt, web.Response):
        return fmt
    entries = await directory_listing(request.app[DEPS].session_factory)
    if fmt == "json":
        return web.json_response({"entries": [
            {"number": e.number, "name": e.name,
             "address": None if e.address is None else
             {"street": e.address.street, "postcode": e.address.postcode, "city": e.address.city}}
            for e in entries]})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(("number", "name", "street", "postcode", "city"))
    for e in entries:
        a = e.address
        w.writerow((e.number, e.name, *(("", "", "") if a is None else (a.street, a.postcode, a.city))))
    return web.Response(text=buf.getvalue(), content_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="directory.csv"'})


async def _credit_json(request: web.Request, customer_id: int, external: str) -> dict[str, object]:
    deps = request.app[DEPS]
    sf = deps.session_factory
    limit = await credit_limit_of(sf, customer_id)
    periods = _periods(request)
    now = datetime.now(UTC).timestamp()
    start, end = periods.bounds(now)
    rating = deps.rating
    credit = None if rating is None else rating.credit
    if credit is not None and credit.period == start:
        total = int(credit.totals.get(customer_id, 0))
    else:
        total = (await period_totals(sf, start)).get(customer_id, 0)
    policy = deps.policy
    suspended = None
    if policy is not None:
        suspended = any(s.reason is SuspensionReason.CREDIT_LIMIT for s in policy.active_suspensions(customer_id))
    return {
        "customer": external,
        "credit_limit_ore": limit,
        "period": start.astimezone(periods.tz).strftime("%Y-%m"),
        "period_total_ore": total,
        "remaining_ore": None if limit is None else max(0, limit - total),
        "suspended_for_credit_limit": suspended,
        "cut_margin_ore": deps.config.credit_cut_margin_ore,
    }


@routes.get("/api/v1/customers/{customer}/credit")
@require(*STAFF_READ, CUSTOMER)
async def credit_state(request: web.Request) -> web.StreamResponse:
    """The credit limit, this month's rated total and whether the limit suspended the customer."""
    external = request.match_info["customer"]
    principal = request[PRINCIPAL]
    if principal.role == CUSTOMER and principal.customer != external:
        return problem_details(403, "a customer token can only read its own customer")
    found = await customer_ref(request.app[DEPS].session_factory, external)
    if found is None:
        return problem_details(404, f"no customer with number {external!r}")
    return web.json_response(await _credit_json(request, found[0], external))


@routes.put("/api/v1/customers/{customer}/credit-limit")
@require(*STAFF_WRITE)
async def put_credit_limit(request: web.Request) -> web.StreamResponse:
    """Body ``{"credit_limit_ore": N}`` (whole øre, ≥ 0) or ``{"credit_limit_ore": null}`` to remove it.

    Raising the limit above the month's total (or removing it) lifts a
    credit-limit suspension at once in this process (within 30 s elsewhere).
    """
    external = request.match_info["customer"]
    deps = request.app[DEPS]
    found = await customer_ref(deps.session_factory, external)
    if found is None:
        return problem_details(404, f"no customer with number {external!r}")
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return problem_details(400, "the body must be JSON such as {\"credit_limit_ore\": 50000}")
    if not isinstance(body, dict) or set(body) != {"credit_limit_ore"}:
        return problem_details(400, "the body must be exactly {\"credit_limit_ore\": <whole øre or null>}")
    limit = body["credit_limit_ore"]
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= 10**9):
        return problem_details(400, "credit_limit_ore must be a whole number of øre from 0 to 1000000000, "
                                    f"or null; got {limit!r}")
    actor = request[PRINCIPAL].actor
    await set_credit_limit(deps.session_factory, found[0], limit, actor)
    rating = deps.rating
    if rating is not None:
        await rating.reload_accounts()
    return web.json_response(await _credit_json(request, found[0], external))
