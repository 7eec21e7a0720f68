"""Carrier trunks and the longest-prefix route table: load, and upsert from an import file.

The switch routes from an in-memory copy (``switch.services.trunks``), so this
module is read once at start and after every import; nothing here is on the
call path. Records leave as frozen dataclasses (the services never hold ORM
objects), with the trunk password already decrypted: the B2BUA needs it in
clear to answer a carrier's digest challenge.

Import document section (``softswitch import``)::

    trunks:
      - name: carrierA
        host: 192.0.2.10
        port: 5060
        transport: udp
        username: acct1          # optional: digest credentials towards the carrier
        password: s3cret         # optional; omitted = keep the stored one
        allowed_sources: [192.0.2.0/28]   # incoming-call ACL; empty = the host's address
        emergency: false
        enabled: true            # optional
    routes:
      - prefix: "+47"
        trunks: [carrierA, carrierB]      # failover order
      - prefix: "+"
        trunks: [carrierB]

Trunks and routes are upserted by name / prefix. Nothing absent from the
document is deleted: an import that lists only one new route must not wipe
the table. A route's trunk list is replaced as a whole.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from switch.store.crypto import CTX_TRUNK_PASSWORD, SecretBox
from switch.store.engine import SessionFactory, write_session
from switch.store.models import Route, RouteTrunk, Transport, Trunk
from switch.store.repo_audit import add_audit_event

__all__ = [
    "TrunkRecord",
    "RouteRecord",
    "RoutingImportError",
    "RoutingImportReport",
    "load_routing",
    "import_routing",
    "validate_prefix",
    "trunk_views",
    "route_views",
    "apply_routing",
    "delete_trunk",
    "delete_route",
]

_PREFIX = re.compile(r"\+[0-9]{0,15}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


@dataclass(frozen=True, slots=True)
class TrunkRecord:
    trunk_id: int
    name: str
    host: str
    port: int
    transport: str
    username: str | None
    password: str | None = field(repr=False)
    allowed_sources: tuple[str, ...]
    emergency: bool
    enabled: bool


@dataclass(frozen=True, slots=True)
class RouteRecord:
    route_id: int
    prefix: str
    trunk_ids: tuple[int, ...]
    enabled: bool


class RoutingImportError(ValueError):
    """The document's routing section is wrong; the message says where and why.

    ``field`` names the offending key and ``code`` (with ``params``) says why in a
    form the web pages translate (``provisioning/ui/i18n.py``, keys ``routing_err_<code>``);
    the English message stays what the import and the API print.
    """

    def __init__(self, message: str, *, field: str = "", code: str = "", **params: object) -> None:
        super().__init__(message)
        self.field = field
        self.code = code
        self.params = params


@dataclass(slots=True)
class RoutingImportReport:
    trunks_created: int = 0
    trunks_updated: int = 0
    routes_created: int = 0
    routes_updated: int = 0

    def __str__(self) -> str:
        return (
            f"trunks: {self.trunks_created} created, {self.trunks_updated} updated; "
            f"routes: {self.routes_created} created, {self.routes_updated} updated"
        )


def validate_prefix(prefix: object) -> str:
    """An E.164 prefix with '+' (``+``, ``+47``, ``+4781``), or RoutingImportError."""
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix.strip()):
        raise RoutingImportError(f"route prefix must be '+' followed by up to 15 digits, got {prefix!r}", field="prefix",
                                 code="prefix")
    return prefix.strip()


async def load_routing(session_factory: SessionFactory, secret_box: SecretBox) -> tuple[list[TrunkRecord], list[RouteRecord]]:
    """Every trunk (passwords decrypted) and every route with its ordered trunk ids."""
    async with session_factory() as session:
        trunks = (await session.execute(select(Trunk).order_by(Trunk.id))).scalars().all()
        routes = (
            (await session.execute(select(Route).options(selectinload(Route.trunks)).order_by(Route.id))).scalars().all()
        )
        trunk_records = [
            TrunkRecord(
                trunk_id=t.id,
                name=t.name,
                host=t.host,
                port=t.port,
                transport=str(t.transport.value if isinstance(t.transport, Transport) else t.transport),
                username=t.username,
                password=secret_box.decrypt(t.password_enc, context=CTX_TRUNK_PASSWORD) if t.password_enc else None,
                allowed_sources=tuple(t.allowed_sources or ()),
                emergency=bool(t.emergency),
                enabled=bool(t.enabled),
            )
            for t in trunks
        ]
        route_records = [
            RouteRecord(
                route_id=r.id,
                prefix=r.prefix,
                trunk_ids=tuple(rt.trunk_id for rt in sorted(r.trunks, key=lambda x: x.position)),
                enabled=bool(r.enabled),
            )
            for r in routes
        ]
    return trunk_records, route_records


def _str(item: dict[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    value = item.get(key)
    if value is None:
        if required:
            raise RoutingImportError(f"{where}: '{key}' is required", field=key, code="required")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RoutingImportError(f"{where}: '{key}' must be text, got {value!r}", field=key, code="text")
    text = str(value).strip()
    if required and not text:
        raise RoutingImportError(f"{where}: '{key}' must not be empty", field=key, code="required")
    return text


def _bool(item: dict[str, Any], key: str, where: str, default: bool | None) -> bool | None:
    value = item.get(key, default)
    if value is None or isinstance(value, bool):
        return value
    raise RoutingImportError(f"{where}: '{key}' must be true or false, got {value!r}", field=key, code="bool")


def _sources(item: dict[str, Any], where: str) -> list[str] | None:
    value = item.get("allowed_sources")
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise RoutingImportError(f"{where}: 'allowed_sources' must be a list of CIDRs", field="allowed_sources",
                                 code="cidr_list")
    out: list[str] = []
    for cidr in value:
        try:
            out.append(str(ipaddress.ip_network(str(cidr).strip(), strict=False)))
        except ValueError as exc:
            raise RoutingImportError(f"{where}: bad CIDR {cidr!r} in allowed_sources ({exc})", field="allowed_sources",
                                     code="bad_cidr", cidr=str(cidr)) from None
    return out


def _list(doc: dict[str, Any], key: str) -> list[Any]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise RoutingImportError(f"'{key}' must be a list")
    return value


def _trunk_state(t: Trunk) -> tuple[object, ...]:
    return (t.host, t.port, t.transport, t.username, t.password_enc, tuple(t.allowed_sources or ()), t.emergency, t.enabled)


async def import_routing(session: AsyncSession, doc: dict[str, Any], secret_box: SecretBox) -> RoutingImportReport:
    """Upsert the ``trunks`` and ``routes`` of ``doc`` inside the caller's transaction.

    Validates everything it touches and raises RoutingImportError with the
    item's position and name; the caller rolls back. Passwords are sealed
    with the trunk-password context so the ciphertext cannot be moved to
    another column.
    """
    report = RoutingImportReport()
    existing = {t.name: t for t in (await session.execute(select(Trunk))).scalars().all()}
    seen_names: set[str] = set()
    for i, item in enumerate(_list(doc, "trunks"), 1):
        if not isinstance(item, dict):
            raise RoutingImportError(f"trunks[{i}]: must be a mapping")
        name = _str(item, "name", f"trunks[{i}]", required=True)
        assert name is not None
        where = f"trunks[{i}] ({name})"
        if not _NAME.fullmatch(name):
            raise RoutingImportError(f"{where}: name may contain letters, digits, '_', '.', '-' (max 64)", field="name",
                                     code="name")
        if name in seen_names:
            raise RoutingImportError(f"{where}: listed twice", field="name", code="twice")
        seen_names.add(name)
        host = _str(item, "host", where, required=name not in existing)
        port_raw = item.get("port")
        port: int | None = None
        if port_raw is not None:
            if isinstance(port_raw, bool) or not isinstance(port_raw, int) or not 1 <= port_raw <= 65535:
                raise RoutingImportError(f"{where}: port must be 1-65535, got {port_raw!r}", field="port", code="port")
            port = port_raw
        transport_raw = _str(item, "transport", where)
        transport: Transport | None = None
        if transport_raw is not None:
            try:
                transport = Transport(transport_raw.lower())
            except ValueError:
                raise RoutingImportError(
                    f"{where}: transport must be one of {', '.join(t.value for t in Transport)}", field="transport",
                    code="transport", choices=", ".join(t.value for t in Transport)) from None
        username = _str(item, "username", where)
        password = item.get("password")
        if password is not None and not isinstance(password, str):
            raise RoutingImportError(f"{where}: password must be text", field="password", code="text")
        sources = _sources(item, where)
        emergency = _bool(item, "emergency", where, None)
        enabled = _bool(item, "enabled", where, None)

        trunk = existing.get(name)
        if trunk is None:
            trunk = Trunk(
                name=name,
                host=host,
                port=port or 5060,
                transport=transport or Transport.UDP,
                allowed_sources=[],
                emergency=False,
                enabled=True,
            )
            session.add(trunk)
            existing[name] = trunk
            report.trunks_created += 1
            before = None
        else:
            before = _trunk_state(trunk)
            if host is not None:
                trunk.host = host
            if port is not None:
                trunk.port = port
            if transport is not None:
                trunk.transport = transport
        if username is not None or "username" in item:
            trunk.username = username or None
        if password is not None:
            current = (
                secret_box.decrypt(trunk.password_enc, context=CTX_TRUNK_PASSWORD) if trunk.password_enc else ""
            )
            if password != current:  # re-encrypting an unchanged password is not a change
                trunk.password_enc = secret_box.encrypt(password, context=CTX_TRUNK_PASSWORD) if password else None
        if sources is not None:
            trunk.allowed_sources = sources
        if emergency is not None:
            trunk.emergency = emergency
        if enabled is not None:
            trunk.enabled = enabled
        if before is not None and _trunk_state(trunk) != before:
            report.trunks_updated += 1
    await session.flush()

    routes = {
        r.prefix: r
        for r in (await session.execute(select(Route).options(selectinload(Route.trunks)))).scalars().all()
    }
    seen_prefixes: set[str] = set()
    for i, item in enumerate(_list(doc, "routes"), 1):
        if not isinstance(item, dict):
            raise RoutingImportError(f"routes[{i}]: must be a mapping")
        prefix = validate_prefix(item.get("prefix"))
        where = f"routes[{i}] ({prefix})"
        if prefix in seen_prefixes:
            raise RoutingImportError(f"{where}: listed twice", field="prefix", code="twice")
        seen_prefixes.add(prefix)
        names = item.get("trunks")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise RoutingImportError(f"{where}: 'trunks' must be a non-empty list of trunk names", field="trunks",
                                     code="trunks")
        if len(set(names)) != len(names):
            raise RoutingImportError(f"{where}: a trunk is listed twice", field="trunks", code="trunk_twice")
        trunk_ids: list[int] = []
        for n in names:
            t = existing.get(n)
            if t is None:
                raise RoutingImportError(f"{where}: unknown trunk {n!r}", field="trunks", code="unknown_trunk", name=n)
            trunk_ids.append(t.id)
        enabled = _bool(item, "enabled", where, None)
        description = _str(item, "description", where)
        route = routes.get(prefix)
        if route is None:
            route = Route(
                prefix=prefix,
                description=description or "",
                enabled=True if enabled is None else enabled,
                trunks=[RouteTrunk(position=pos, trunk_id=tid) for pos, tid in enumerate(trunk_ids)],
            )
            session.add(route)
            routes[prefix] = route
            report.routes_created += 1
        else:
            changed = False
            if enabled is not None and route.enabled != enabled:
                route.enabled = enabled
                changed = True
            if description is not None and route.description != description:
                route.description = description
                changed = True
            if [rt.trunk_id for rt in sorted(route.trunks, key=lambda rt: rt.position)] != trunk_ids:
                # Replace the trunk list: delete first so (route, position) can be reused.
                route.trunks.clear()
                await session.flush()
                route.trunks.extend(RouteTrunk(position=pos, trunk_id=tid) for pos, tid in enumerate(trunk_ids))
                changed = True
            report.routes_updated += changed
    await session.flush()
    return report


# ------------------------------------------------------------------ one change at a time (API and admin page)
# ``switch.services.routing_admin`` decides what is allowed; these read and write, each write in one
# transaction with its audit event.


def _trunk_view(t: Trunk, used_by: list[str]) -> dict[str, Any]:
    """A trunk as the API shows it (never the password, only whether one is stored)."""
    return {"name": t.name, "host": t.host, "port": t.port, "transport": str(getattr(t.transport, "value", t.transport)),
            "username": t.username, "has_password": bool(t.password_enc), "allowed_sources": list(t.allowed_sources or ()),
            "emergency": bool(t.emergency), "enabled": bool(t.enabled), "routes": used_by}


def _route_view(r: Route, names: dict[int, str]) -> dict[str, Any]:
    return {"prefix": r.prefix, "trunks": [names[rt.trunk_id] for rt in sorted(r.trunks, key=lambda x: x.position)],
            "enabled": bool(r.enabled), "description": r.description}


async def _routes_using(session: AsyncSession) -> dict[int, list[str]]:
    rows = (await session.execute(select(RouteTrunk.trunk_id, Route.prefix).join(Route, Route.id == RouteTrunk.route_id)
                                  .order_by(Route.prefix))).all()
    out: dict[int, list[str]] = {}
    for trunk_id, prefix in rows:
        out.setdefault(trunk_id, []).append(prefix)
    return out


async def _trunk_names(session: AsyncSession) -> dict[int, str]:
    return {i: n for i, n in (await session.execute(select(Trunk.id, Trunk.name))).all()}


async def trunk_views(session_factory: SessionFactory, name: str | None = None) -> list[dict[str, Any]]:
    """Every trunk by name (or the one called ``name``), each with the prefixes of the routes that use it."""
    async with session_factory() as session:
        q = select(Trunk).order_by(Trunk.name)
        if name is not None:
            q = q.where(Trunk.name == name)
        rows = (await session.execute(q)).scalars().all()
        used = await _routes_using(session)
        return [_trunk_view(t, used.get(t.id, [])) for t in rows]


async def route_views(session_factory: SessionFactory, prefix: str | None = None) -> list[dict[str, Any]]:
    """Every route by prefix (or the one for ``prefix``) with its trunk names in failover order."""
    async with session_factory() as session:
        q = select(Route).options(selectinload(Route.trunks)).order_by(Route.prefix)
        if prefix is not None:
            q = q.where(Route.prefix == prefix)
        rows = (await session.execute(q)).scalars().all()
        names = await _trunk_names(session)
        return [_route_view(r, names) for r in rows]


async def apply_routing(session_factory: SessionFactory, doc: dict[str, Any], secret_box: SecretBox, *, actor: str,
                        action: str, subject_type: str, subject_id: str, details: dict[str, Any]) -> None:
    """``import_routing`` of ``doc`` and its audit event in one transaction (RoutingImportError: nothing stored)."""
    async with write_session(session_factory) as session:
        await import_routing(session, doc, secret_box)
        add_audit_event(session, actor=actor, action=action, subject_type=subject_type, subject_id=subject_id,
                        details=details)


async def delete_trunk(session_factory: SessionFactory, name: str, *, actor: str) -> None:
    """Delete a trunk no route uses (the caller checked), audited."""
    async with write_session(session_factory) as session:
        await session.execute(delete(Trunk).where(Trunk.name == name))
        add_audit_event(session, actor=actor, action="trunk.delete", subject_type="trunk", subject_id=name, details={})


async def delete_route(session_factory: SessionFactory, prefix: str, *, actor: str) -> bool:
    """Delete the route for ``prefix``, audited; False when there is none."""
    async with write_session(session_factory) as session:
        route_id = (await session.execute(select(Route.id).where(Route.prefix == prefix))).scalar_one_or_none()
        if route_id is None:
            return False
        await session.execute(delete(RouteTrunk).where(RouteTrunk.route_id == route_id))
        await session.execute(delete(Route).where(Route.id == route_id))
        add_audit_event(session, actor=actor, action="route.delete", subject_type="route", subject_id=prefix, details={})
    return True
