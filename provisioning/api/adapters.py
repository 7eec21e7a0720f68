"""Operator API: adapters and their lamps."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from switch.store import models as m
from switch.store import repo_adapters
from switch.store.repo_adapters import normalise_mac

from ..ata import config_status, origin_of
from ..auth import require
from ..errors import problem
from ..keys import SERVICES

routes = web.RouteTableDef()


async def _adapter(request: web.Request) -> m.Adapter | web.Response:
    raw = request.match_info["mac"]
    try:
        mac = normalise_mac(raw)
    except ValueError:
        return problem(400, f"not a MAC address: {raw!r} (expected e.g. 00:0E:08:AB:CD:01)")
    services = request.app[SERVICES]
    async with services.session_factory() as session:
        adapter = (await session.execute(select(m.Adapter).where(m.Adapter.mac == mac))).scalar_one_or_none()
    if adapter is None:
        return problem(404, f"no adapter with MAC {mac}")
    return adapter


@routes.get("/api/v1/adapters/{mac}/status")
@require("operator")
async def adapter_status(request: web.Request) -> web.Response:
    """The adapter's lamps as the switch knows them (PWR, WAN, Tel1, Tel2)."""
    adapter = await _adapter(request)
    if isinstance(adapter, web.Response):
        return adapter
    services = request.app[SERVICES]
    lamps = services.status.status(adapter.id)
    body: dict[str, object] = {name: lamps[name].as_json() for name in ("pwr", "wan", "tel1", "tel2")}
    body["mac"] = adapter.mac
    body["model"] = adapter.model
    body["firmware"] = adapter.firmware_seen
    info = await repo_adapters.get_adapter(services.session_factory, adapter.id)
    if info is not None:
        # Did the config change since the adapter last fetched it? (provisioning/ata.py)
        body["config"] = await config_status(request.app, info, origin_of(request))
    return web.json_response(body)
