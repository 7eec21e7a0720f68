"""Changing carrier trunks and routes while the switch runs: one place for the API and the web UI.

Both ``/api/v1/trunks``, ``/api/v1/routes/{prefix}`` and the admin page
``/ui/admin/trunks`` call these functions, so a change is validated the same
way (``repo_trunks.import_routing``, the import file's own rules, in one
transaction with its audit event: nothing is stored on error), refused the
same way (a trunk that routes still use cannot be deleted) and reaches the
running switch the same way (``reload``: the routing table is read again now,
not at the next 30 s tick).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from switch.store.crypto import SecretBox
from switch.store.engine import SessionFactory, write_session
from switch.store.models import Route, RouteTrunk, Trunk
from switch.store.repo_audit import add_audit_event
from switch.store.repo_trunks import RoutingImportError, import_routing, validate_prefix

__all__ = ["ROUTE_FIELDS", "TRUNK_FIELDS", "RoutingAdmin", "RoutingChangeError"]

TRUNK_FIELDS = ("name", "host", "port", "transport", "username", "password", "allowed_sources", "emergency",
                "enabled")
ROUTE_FIELDS = ("trunks", "enabled", "description")
_QUOTED = re.compile(r"'([a-z_]+)'")


class RoutingChangeError(ValueError):
    """A change refused: ``status`` as the API answers it, the ``field`` it is about, and why.

    ``code`` and ``params`` say why in a form the web pages translate
    (``routing_err_<code>`` in ``provisioning/ui/i18n.py``); ``str()`` is the API's English detail.
    """

    def __init__(self, status: int, message: str, *, field: str, code: str, **params: object) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.code = code
        self.params = params


def _field_of(err: RoutingImportError, fields: tuple[str, ...]) -> str:
    """The field a RoutingImportError is about: the one it names, else the one its message names."""
    if err.field in fields:
        return err.field
    message = str(err)
    for m in _QUOTED.finditer(message):
        if m.group(1) in fields:
            return m.group(1)
    return "allowed_sources" if "CIDR" in message else fields[0]


def trunk_json(t: Trunk, used_by: list[str]) -> dict[str, Any]:
    """A trunk as the API shows it (never the password, only whether one is stored)."""
    return {"name": t.name, "host": t.host, "port": t.port, "transport": str(getattr(t.transport, "value", t.transport)),
            "username": t.username, "has_password": bool(t.password_enc), "allowed_sources": list(t.allowed_sources or ()),
            "emergency": bool(t.emergency), "enabled": bool(t.enabled), "routes": used_by}


async def _routes_using(session: AsyncSession) -> dict[int, list[str]]:
    rows = (await session.execute(select(RouteTrunk.trunk_id, Route.prefix).join(Route, Route.id == RouteTrunk.route_id)
                                  .order_by(Route.prefix))).all()
    out: dict[int, list[str]] = {}
    for trunk_id, prefix in rows:
        out.setdefault(trunk_id, []).append(prefix)
    return out


def _unknown(body: dict[str, Any], fields: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise RoutingChangeError(400, f"{unknown[0]}: unknown field", field=unknown[0], code="unknown_field")


def prefix_of(raw: str) -> str:
    """A route prefix as written in a path or a form (``+47``; ``+`` is the default route)."""
    try:
        return validate_prefix(raw)
    except RoutingImportError as err:
        raise RoutingChangeError(400, f"prefix: {err} (the default route is /api/v1/routes/+)", field="prefix",
                                 code="prefix") from None


@dataclass(frozen=True, slots=True)
class RoutingAdmin:
    """Trunks and routes: read, and change with validation, audit and the running switch reloaded."""

    session_factory: SessionFactory
    secret_box: SecretBox
    #: read the table into the running switch now; None when no SIP side runs (tests of the HTTP side alone)
    reload: Callable[[], Awaitable[object]] | None = None

    async def trunks(self) -> list[dict[str, Any]]:
        async with self.session_factory() as session:
            rows = (await session.execute(select(Trunk).order_by(Trunk.name))).scalars().all()
            used = await _routes_using(session)
            return [trunk_json(t, used.get(t.id, [])) for t in rows]

    async def trunk(self, name: str) -> dict[str, Any] | None:
        async with self.session_factory() as session:
            t = (await session.execute(select(Trunk).where(Trunk.name == name))).scalar_one_or_none()
            return None if t is None else trunk_json(t, (await _routes_using(session)).get(t.id, []))

    async def routes(self) -> list[dict[str, Any]]:
        async with self.session_factory() as session:
            rows = (await session.execute(select(Route).options(selectinload(Route.trunks)).order_by(Route.prefix))
                    ).scalars().all()
            names: dict[int, str] = {i: n for i, n in (await session.execute(select(Trunk.id, Trunk.name))).all()}
            return [_route_json(r, names) for r in rows]

    async def route(self, prefix: str) -> dict[str, Any] | None:
        async with self.session_factory() as session:
            r = (await session.execute(select(Route).options(selectinload(Route.trunks)).where(Route.prefix == prefix))
                 ).scalar_one_or_none()
            if r is None:
                return None
            names: dict[int, str] = {i: n for i, n in (await session.execute(select(Trunk.id, Trunk.name))).all()}
            return _route_json(r, names)

    async def _apply(self, doc: dict[str, Any], fields: tuple[str, ...], actor: str, action: str, subject_type: str,
                     subject_id: str, details: dict[str, Any]) -> None:
        try:
            async with write_session(self.session_factory) as session:
                await import_routing(session, doc, self.secret_box)
                add_audit_event(session, actor=actor, action=action, subject_type=subject_type, subject_id=subject_id,
                                details=details)
        except RoutingImportError as err:
            message = re.sub(r"^(trunks|routes)\[1\] ", "", str(err))
            raise RoutingChangeError(422, message, field=_field_of(err, fields), code=err.code or "invalid",
                                     **err.params) from None
        await self._reload()

    async def _reload(self) -> None:
        if self.reload is not None:
            await self.reload()

    async def create_trunk(self, body: dict[str, Any], actor: str) -> dict[str, Any]:
        """A trunk as in the import file (``name``, ``host`` required); 409 if the name is taken."""
        _unknown(body, TRUNK_FIELDS)
        name = body.get("name")
        if isinstance(name, str) and await self.trunk(name.strip()) is not None:
            raise RoutingChangeError(409, f"name: a trunk {name.strip()!r} exists (PATCH it)", field="name",
                                     code="trunk_exists", name=name.strip())
        if isinstance(name, str) and "host" not in body:
            raise RoutingChangeError(422, "'host' is required", field="host", code="required")
        await self._apply({"trunks": [body]}, TRUNK_FIELDS, actor, "trunk.create", "trunk", str(name),
                          {k: v for k, v in body.items() if k != "password"})
        created = await self.trunk(str(name).strip())
        assert created is not None
        return created

    async def update_trunk(self, name: str, body: dict[str, Any], actor: str) -> dict[str, Any]:
        """Any trunk field but ``name``; ``"password": ""`` removes the stored password."""
        _unknown(body, TRUNK_FIELDS[1:])
        if await self.trunk(name) is None:
            raise RoutingChangeError(404, f"no trunk {name!r}", field="name", code="no_trunk", name=name)
        details = {k: v for k, v in body.items() if k != "password"} | ({"password": "changed"} if "password" in body else {})
        await self._apply({"trunks": [{**body, "name": name}]}, TRUNK_FIELDS, actor, "trunk.update", "trunk", name,
                          details)
        changed = await self.trunk(name)
        assert changed is not None
        return changed

    async def delete_trunk(self, name: str, actor: str) -> None:
        """Refused (409) while a route uses the trunk: change or delete those routes first."""
        rep = await self.trunk(name)
        if rep is None:
            raise RoutingChangeError(404, f"no trunk {name!r}", field="name", code="no_trunk", name=name)
        if rep["routes"]:
            raise RoutingChangeError(409, f"name: routes {', '.join(rep['routes'])} use trunk {name!r}", field="name",
                                     code="trunk_in_use", name=name, routes=", ".join(rep["routes"]))
        async with write_session(self.session_factory) as session:
            await session.execute(delete(Trunk).where(Trunk.name == name))
            add_audit_event(session, actor=actor, action="trunk.delete", subject_type="trunk", subject_id=name,
                            details={})
        await self._reload()

    async def put_route(self, prefix: str, body: dict[str, Any], actor: str) -> tuple[dict[str, Any], bool]:
        """Set the route for ``prefix`` (trunks in failover order); (the route, whether it is new)."""
        _unknown(body, ROUTE_FIELDS)
        existed = await self.route(prefix) is not None
        await self._apply({"routes": [{**body, "prefix": prefix}]}, ROUTE_FIELDS, actor, "route.put", "route", prefix,
                          dict(body))
        rep = await self.route(prefix)
        assert rep is not None
        return rep, not existed

    async def delete_route(self, prefix: str, actor: str) -> None:
        async with write_session(self.session_factory) as session:
            route_id = (await session.execute(select(Route.id).where(Route.prefix == prefix))).scalar_one_or_none()
            if route_id is None:
                raise RoutingChangeError(404, f"no route for prefix {prefix!r}", field="prefix", code="no_route",
                                         prefix=prefix)
            await session.execute(delete(RouteTrunk).where(RouteTrunk.route_id == route_id))
            await session.execute(delete(Route).where(Route.id == route_id))
            add_audit_event(session, actor=actor, action="route.delete", subject_type="route", subject_id=prefix,
                            details={})
        await self._reload()


def _route_json(r: Route, names: dict[int, str]) -> dict[str, Any]:
    return {"prefix": r.prefix, "trunks": [names[rt.trunk_id] for rt in sorted(r.trunks, key=lambda x: x.position)],
            "enabled": bool(r.enabled), "description": r.description}
