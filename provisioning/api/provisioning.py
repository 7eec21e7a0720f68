"""Operator API for provisioning: unclaimed adapters, fetch history, profile URLs, resync.

* ``GET  /api/v1/unclaimed-adapters`` -- unknown MACs that asked for a config.
* ``POST /api/v1/unclaimed-adapters/{mac}/assign`` -- make one an adapter of a customer.
* ``GET  /api/v1/adapters/{mac}/config-fetches`` -- when, from where, with which
  User-Agent and which config (hash) the adapter fetched, and whether its config changed since.
* ``GET  /api/v1/adapters/{mac}/profile-url`` -- the adapter's own authenticated URL and digest
  credentials, to set on a device by hand (staging). Audited: it hands out a secret.
* ``POST /api/v1/adapters/{mac}/resync`` -- make the adapter fetch its config now: a SIP
  NOTIFY to every registered contact of its lines, with the event its vendor understands
  (sent and digest-answered by ``switch.services.resync``; this handler picks the event,
  waits and audits).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy import select

from switch.store import adapter_models, repo_adapters
from switch.store.crypto import SecretBox
from switch.store.engine import SessionFactory, write_session
from switch.store.models import Customer
from switch.store.repo_adapters import AdapterInfo, format_mac, normalise_mac
from switch.store.repo_audit import add_audit_event

from ..ata import CFG_PREFIX, DIGEST_REALM, adapter_credentials, config_status, origin_of
from ..auth import PRINCIPAL, STAFF_READ, STAFF_WRITE, require
from ..errors import problem_details
from ..keys import DEPS

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

DEFAULT_WAIT = 2.0
MAX_WAIT = 10.0


# --------------------------------------------------------------------------- helpers


async def _adapter(request: web.Request) -> AdapterInfo | web.Response:
    raw = request.match_info["mac"]
    try:
        mac = normalise_mac(raw)
    except ValueError:
        return problem_details(400, f"not a MAC address: {raw!r} (expected e.g. 00:0E:08:AB:CD:01)")
    adapter = await repo_adapters.get_adapter_by_mac(request.app[DEPS].session_factory, mac)
    if adapter is None:
        return problem_details(404, f"no adapter with MAC {format_mac(mac)}")
    return adapter


def _origin(request: web.Request) -> str | web.Response:
    """The origin adapters reach us at: ``?origin=https://prov.example.net`` or this request's."""
    given = request.query.get("origin")
    if not given:
        return origin_of(request)
    parts = urlsplit(given)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/") or parts.query \
            or "@" in parts.netloc or any(c.isspace() for c in given):
        return problem_details(400, f"origin must look like https://host[:port], got {given!r}")
    return f"{parts.scheme}://{parts.netloc}"


def _actor(request: web.Request) -> str:
    principal = request.get(PRINCIPAL)
    return principal.actor if principal is not None else "operator"


def _unclaimed_json(u: repo_adapters.UnclaimedInfo) -> dict[str, Any]:
    return {
        "mac": format_mac(u.mac),
        "first_seen": u.first_seen_at.isoformat(timespec="seconds"),
        "last_seen": u.last_seen_at.isoformat(timespec="seconds"),
        "last_addr": u.last_addr,
        "user_agent": u.user_agent,
        "model_hint": u.model_hint,
        "fetch_count": u.fetch_count,
    }


# --------------------------------------------------------------------------- unclaimed


@routes.get("/api/v1/unclaimed-adapters")
@require(*STAFF_READ)
async def list_unclaimed(request: web.Request) -> web.Response:
    """Unknown MACs that asked for a config, most recently seen first."""
    rows = await repo_adapters.list_unclaimed(request.app[DEPS].session_factory)
    return web.json_response({"unclaimed": [_unclaimed_json(u) for u in rows]})


@routes.post("/api/v1/unclaimed-adapters/{mac}/assign")
@require(*STAFF_WRITE)
async def assign_unclaimed(request: web.Request) -> web.Response:
    """Body: ``{"customer": "C1001"}`` (customer number) or ``{"customer_id": 7}``;
    optional ``"model"`` (default: recognised from the adapter's User-Agent), ``"description"``."""
    raw = request.match_info["mac"]
    try:
        mac = normalise_mac(raw)
    except ValueError:
        return problem_details(400, f"not a MAC address: {raw!r}")
    try:
        body = await request.json()
    except ValueError:
        return problem_details(400, "body must be a JSON object")
    if not isinstance(body, dict):
        return problem_details(400, "body must be a JSON object")
    deps = request.app[DEPS]
    customer_id = body.get("customer_id")
    ref = body.get("customer")
    if customer_id is None and ref is None:
        return problem_details(400, "give the customer: \"customer\" (customer number) or \"customer_id\"")
    if customer_id is not None and (isinstance(customer_id, bool) or not isinstance(customer_id, int)
                                    or not 1 <= customer_id < 2**63):  # a JSON object or a huge number was a 500
        return problem_details(400, "customer_id must be a whole number", field="customer_id")
    if ref is not None and not isinstance(ref, str):
        return problem_details(400, "customer must be the customer number (a string)", field="customer")
    async with deps.session_factory() as session:
        if customer_id is not None:
            stmt = select(Customer.id, Customer.external_id).where(Customer.id == customer_id)
        else:
            stmt = select(Customer.id, Customer.external_id).where(Customer.external_id == str(ref))
        row = (await session.execute(stmt)).first()
    if row is None:
        return problem_details(404, f"no customer {ref if ref is not None else customer_id!r}")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        return problem_details(400, "model must be a string")
    description = body.get("description")
    try:
        adapter = await repo_adapters.assign_unclaimed(
            deps.session_factory, mac, customer_id=row[0], secret_box=deps.secret_box,
            model=model, description=description if isinstance(description, str) else None,
        )
    except LookupError:
        return problem_details(404, f"{format_mac(mac)} is not in the unclaimed list")
    except ValueError as exc:
        status = 409 if "already exists" in str(exc) else 400
        return problem_details(status, str(exc))
    async with write_session(deps.session_factory) as session:
        add_audit_event(session, actor=_actor(request), action="adapter.assign", subject_type="adapter",
                        subject_id=adapter.mac, customer_id=row[0], details={"model": adapter.model})
    log.info("provisioning: unclaimed adapter %s assigned to customer %s as %s", mac, row[1], adapter.model)
    return web.json_response(
        {"mac": format_mac(adapter.mac), "model": adapter.model, "customer": row[1],
         "profile_url": f"/api/v1/adapters/{adapter.mac}/profile-url"},
        status=201,
    )


# --------------------------------------------------------------------------- history


@routes.get("/api/v1/adapters/{mac}/config-fetches")
@require(*STAFF_READ)
async def config_fetches(request: web.Request) -> web.Response:
    """Newest first (``?limit=`` 1..100, default 20), and whether the config changed since."""
    adapter = await _adapter(request)
    if isinstance(adapter, web.Response):
        return adapter
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        return problem_details(400, "limit must be a number")
    limit = max(1, min(100, limit))
    deps = request.app[DEPS]
    rows = await repo_adapters.list_config_fetches(deps.session_factory, adapter.adapter_id, limit=limit)
    return web.json_response({
        "mac": format_mac(adapter.mac),
        "firmware": adapter.firmware_seen,
        "config": await config_status(request.app, adapter, origin_of(request)),
        "fetches": [
            {"at": f.fetched_at.isoformat(timespec="seconds"), "remote_addr": f.remote_addr,
             "user_agent": f.user_agent, "config_hash": f.config_hash}
            for f in rows
        ],
    })


# --------------------------------------------------------------------------- profile URL


def _staging(family: str, origin: str, token_url: str, token: str, digest_user: str,
             digest_password: str) -> dict[str, Any]:
    """What to type into the device's web UI, per vendor (parameter names: ATA_FORMATS.md)."""
    scheme, netloc = origin.split("://", 1)
    if family == "spa":
        return {
            "token": {"Profile_Rule": token_url},
            "digest": {"Profile_Rule": f"[--uid {digest_user} --pwd {digest_password}]"
                                       f"{origin}{CFG_PREFIX}/spa$MA.xml"},
        }
    if family in ("ht80x", "ht81x"):
        proto = "2" if scheme == "https" else "1"
        return {
            "token": {"P212": proto, "P237": f"{netloc}{CFG_PREFIX}/{token}"},
            "digest": {"P212": proto, "P237": f"{netloc}{CFG_PREFIX}", "P1360": digest_user,
                       "P1361": digest_password},
        }
    return {"token": {"X_DeviceManagement.ITSPProvisioning.ConfigURL": token_url}}


@routes.get("/api/v1/adapters/{mac}/profile-url")
@require(*STAFF_WRITE)
async def profile_url(request: web.Request) -> web.Response:
    """The adapter's own authenticated URL (and digest credentials) for staging it by hand.

    ``?origin=https://prov.example.net`` when adapters reach the server under another
    name than this API request used.
    """
    adapter = await _adapter(request)
    if isinstance(adapter, web.Response):
        return adapter
    origin = _origin(request)
    if isinstance(origin, web.Response):
        return origin
    deps = request.app[DEPS]
    try:
        body = await staging_values(deps.session_factory, deps.secret_box, adapter, origin)
    except LookupError as err:
        return problem_details(409, str(err))
    async with write_session(deps.session_factory) as session:
        add_audit_event(session, actor=_actor(request), action="adapter.profile_url.read",
                        subject_type="adapter", subject_id=adapter.mac, customer_id=adapter.customer_id)
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def staging_values(sf: SessionFactory, box: SecretBox, adapter: AdapterInfo, origin: str) -> dict[str, Any]:
    """The adapter's own URL, digest credentials and per-vendor fields for staging it by hand.

    Shared by this API and the operator UI's "staging values" page; the caller audits the read.
    Raises LookupError when the model has no template or the adapter no secret.
    """
    info = adapter_models.model_info(adapter.model)
    if info is None:
        raise LookupError(f"model {adapter.model!r} has no provisioning template")
    secret = await repo_adapters.get_provisioning_secret(sf, adapter.adapter_id, box)
    if secret is None:
        raise LookupError("adapter has no provisioning secret")
    creds = adapter_credentials(secret, adapter.mac)
    filename = info.config_filename_pattern.format(mac=adapter.mac)
    token_url = f"{origin}{CFG_PREFIX}/{creds.url_token}/{filename}"
    bootstrap = [origin + "/" + info.bootstrap_filename] if info.bootstrap_filename else []
    return {
        "mac": format_mac(adapter.mac),
        "model": adapter.model,
        "profile_url": token_url,
        "digest": {"url": f"{origin}{CFG_PREFIX}/{filename}", "realm": DIGEST_REALM,
                   "username": creds.digest_user, "password": creds.digest_password},
        "bootstrap_urls": bootstrap,
        "staging": _staging(info.family, origin, token_url, creds.url_token, creds.digest_user,
                            creds.digest_password),
    }


# --------------------------------------------------------------------------- resync


@routes.post("/api/v1/adapters/{mac}/resync")
@require(*STAFF_WRITE)
async def resync(request: web.Request) -> web.Response:
    """Make the adapter re-fetch its config now. 202 with what was sent (and the answers that
    came within ``?wait=`` seconds, default 2); 409 when no line of it is registered."""
    adapter = await _adapter(request)
    if isinstance(adapter, web.Response):
        return adapter
    try:
        wait = float(request.query.get("wait", str(DEFAULT_WAIT)))
    except ValueError:
        return problem_details(400, "wait must be a number of seconds")
    wait = max(0.0, min(MAX_WAIT, wait))
    deps = request.app[DEPS]
    if deps.resync is None:
        return problem_details(503, "resync needs the SIP side of the switch, and it is not running here")
    event, outcomes = await deps.resync.resync_adapter(adapter, _actor(request), wait)
    if not outcomes:
        return problem_details(409, f"adapter {format_mac(adapter.mac)} has no registered line to send a resync to",
                       mac=format_mac(adapter.mac))
    return web.json_response(
        {"mac": format_mac(adapter.mac), "event": event, "sent": [o.as_json() for o in outcomes]},
        status=202,
    )
