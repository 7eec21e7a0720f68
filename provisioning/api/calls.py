"""Operator and customer API: call detail records (CDRs), per line (a customer token: its own lines only).

Support answers "I heard an error message" by looking up the same cause on the
line's call history; the customer's invoice specification comes from here too.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

from aiohttp import web
from sqlalchemy import or_, select

from switch.store import models as m
from switch.store.repo_lines import normalise_number

from ..auth import CUSTOMER, PRINCIPAL, STAFF_READ, require
from ..errors import problem_details
from ..guards import whole_number
from ..keys import DEPS

routes = web.RouteTableDef()

_FIELDS = (
    "call_id", "direction", "calling_number", "dialled", "normalised", "number_class", "route_prefix",
    "trunk_name", "forwarded_from", "setup_at", "answer_at", "end_at", "duration_s", "final_code", "cause",
    "price_ore", "zone", "tariff_version",
    "support_code", "decision_trail", "forward_chain",
)
#: API names of columns whose stored name differs.
_COLUMN = {"price_ore": "charge_ore"}
#: Stored as JSON text; the JSON answer gives them as lists (the CSV keeps the text).
_JSON_FIELDS = frozenset({"decision_trail", "forward_chain"})


def _value(record: m.CallRecord, name: str) -> object:
    v = getattr(record, _COLUMN.get(name, name))
    if isinstance(v, datetime):
        return v.isoformat(timespec="seconds")
    return getattr(v, "value", v)


def _parse_time(raw: str | None, name: str) -> datetime | None | web.Response:
    if raw is None:
        return None
    try:
        dt = datetime.fromisoformat(raw)
    except ValueError:
        return problem_details(400, f"{name} must be an ISO 8601 time such as 2026-11-01T00:00:00+00:00, got {raw!r}")
    if dt.tzinfo is None:
        return problem_details(400, f"{name} needs a time zone (e.g. +00:00), got {raw!r}")
    return dt


@routes.get("/api/v1/lines/{number}/calls")
@require(*STAFF_READ, CUSTOMER)
async def line_calls(request: web.Request) -> web.StreamResponse:
    """Calls made from or to the line with this number, newest first.

    Query: ``since``/``until`` (ISO 8601 with zone), ``limit`` (1..1000, default 100),
    ``format=csv`` for an export.
    """
    raw = request.match_info["number"]
    try:
        e164 = normalise_number(raw)
    except ValueError:
        return problem_details(400, f"not a telephone number: {raw!r} (8-digit national or E.164)")
    limit_s = request.query.get("limit", "100")
    limit = whole_number(limit_s, 1000)
    if not limit:
        return problem_details(400, f"limit must be an integer from 1 to 1000, got {limit_s!r}")
    since = _parse_time(request.query.get("since"), "since")
    until = _parse_time(request.query.get("until"), "until")
    for t in (since, until):
        if isinstance(t, web.Response):
            return t
    deps = request.app[DEPS]
    async with deps.session_factory() as session:
        stmt_line = select(m.Line.id).join(m.Number, m.Line.number_id == m.Number.id).where(m.Number.e164 == e164)
        principal = request[PRINCIPAL]
        if principal.role == CUSTOMER:  # its own lines only; another's answers as if it did not exist
            stmt_line = stmt_line.join(m.Customer, m.Line.customer_id == m.Customer.id).where(
                m.Customer.external_id == principal.customer)
        line_id = (await session.execute(stmt_line)).scalar_one_or_none()
        if line_id is None:
            return problem_details(404, f"no line has the number {e164}")
        stmt = select(m.CallRecord).where(
            or_(m.CallRecord.calling_line_id == line_id, m.CallRecord.called_line_id == line_id)
        )
        if isinstance(since, datetime):
            stmt = stmt.where(m.CallRecord.setup_at >= since)
        if isinstance(until, datetime):
            stmt = stmt.where(m.CallRecord.setup_at < until)
        stmt = stmt.order_by(m.CallRecord.setup_at.desc(), m.CallRecord.id.desc()).limit(limit)
        rows = (await session.execute(stmt)).scalars().all()
    if request.query.get("format") == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(_FIELDS)
        for r in rows:
            w.writerow(["" if _value(r, f) is None else _value(r, f) for f in _FIELDS])
        return web.Response(
            text=buf.getvalue(),
            content_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="calls-{e164.lstrip("+")}.csv"'},
        )
    return web.json_response({"number": e164, "calls": [_json_call(r) for r in rows]})


def _json_call(r: m.CallRecord) -> dict[str, object]:
    out: dict[str, object] = {}
    for f in _FIELDS:
        v = _value(r, f)
        if f in _JSON_FIELDS and isinstance(v, str):
            try:
                v = json.loads(v)
            except ValueError:
                pass
        out[f] = v
    return out
