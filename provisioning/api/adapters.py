"""Operator API: adapters and their lamps."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy import select

from switch.store import models as m
from switch.store import lamp_history, repo_adapters
from switch.store.repo_adapters import normalise_mac

from ..ata import config_status, origin_of
from ..auth import STAFF_READ, require
from ..errors import problem_details
from ..guards import whole_number
from ..deps import HttpDeps
from ..keys import DEPS

routes = web.RouteTableDef()


async def _adapter(request: web.Request) -> m.Adapter | web.Response:
    raw = request.match_info["mac"]
    try:
        mac = normalise_mac(raw)
    except ValueError:
        return problem_details(400, f"not a MAC address: {raw!r} (expected e.g. 00:0E:08:AB:CD:01)")
    deps = request.app[DEPS]
    async with deps.session_factory() as session:
        adapter = (await session.execute(select(m.Adapter).where(m.Adapter.mac == mac))).scalar_one_or_none()
    if adapter is None:
        return problem_details(404, f"no adapter with MAC {mac}")
    return adapter


@routes.get("/api/v1/adapters/{mac}/status")
@require(*STAFF_READ)
async def adapter_status(request: web.Request) -> web.Response:
    """The adapter's lamps as the switch knows them (PWR, WAN, Tel1, Tel2)."""
    adapter = await _adapter(request)
    if isinstance(adapter, web.Response):
        return adapter
    deps = request.app[DEPS]
    lamps = deps.status.status(adapter.id)
    body: dict[str, object] = {name: lamps[name].as_json() for name in ("pwr", "wan", "tel1", "tel2")}
    body["lines"] = _line_details(deps, adapter.id)
    body["mac"] = adapter.mac
    body["model"] = adapter.model
    body["firmware"] = adapter.firmware_seen
    info = await repo_adapters.get_adapter(deps.session_factory, adapter.id)
    if info is not None:
        # Did the config change since the adapter last fetched it? (provisioning/ata.py)
        body["config"] = await config_status(request.app, info, origin_of(request))
    return web.json_response(body)


def _line_details(deps: HttpDeps, adapter_id: int) -> list[dict[str, object]]:
    """Per port: the number, its registered contacts and how they answer pings (support's detail view)."""
    out: list[dict[str, object]] = []
    now = time.time()
    for line in sorted(deps.lines.adapter_lines(adapter_id), key=lambda li: li.port):
        contacts = []
        for b in deps.location.bindings(line.line_id):
            r = deps.status.reach.get((b.line_id, b.contact))
            contacts.append(
                {
                    "contact": b.contact,
                    "received": f"{b.received_host}:{b.received_port}",
                    "transport": b.transport,
                    "expires_in": b.remaining(now),
                    "user_agent": b.user_agent,
                    "pings": None
                    if r is None
                    else {
                        "sent": r.sent,
                        "lost": r.lost,
                        "consecutive_lost": r.consecutive_lost,
                        "last_rtt_ms": None if r.last_rtt is None else round(r.last_rtt * 1000, 1),
                        "avg_rtt_ms": None if r.avg_rtt is None else round(r.avg_rtt * 1000, 1),
                        "history_ms": [None if x is None else round(x * 1000, 1) for x in r.history],
                    },
                }
            )
        out.append({"port": line.port, "number": line.number, "auth_user": line.auth_user, "contacts": contacts})
    return out


@routes.get("/api/v1/adapters/{mac}/lamp-events")
@require(*STAFF_READ)
async def lamp_events(request: web.Request) -> web.Response:
    """History of the adapter's lamps, newest first (``?limit=`` up to 500, default 100)."""
    adapter = await _adapter(request)
    if isinstance(adapter, web.Response):
        return adapter
    raw = request.query.get("limit", "100")
    limit = whole_number(raw, 500)
    if not limit:
        return problem_details(400, f"limit must be an integer from 1 to 500, got {raw!r}")
    deps = request.app[DEPS]
    rows = await lamp_history.list_lamp_events(deps.session_factory, adapter.id, limit=limit)
    return web.json_response(
        {
            "mac": adapter.mac,
            "events": [
                {
                    "lamp": r.lamp.lower(),
                    "from": r.old_state,
                    "to": r.new_state,
                    "reason": r.reason,
                    "at": datetime.fromtimestamp(r.at, tz=UTC).isoformat(timespec="seconds"),
                }
                for r in rows
            ],
        }
    )
