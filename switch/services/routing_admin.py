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

from switch.store import repo_trunks
from switch.store.crypto import SecretBox
from switch.store.engine import SessionFactory
from switch.store.repo_trunks import RoutingImportError, validate_prefix

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
        return await repo_trunks.trunk_views(self.session_factory)

    async def trunk(self, name: str) -> dict[str, Any] | None:
        found = await repo_trunks.trunk_views(self.session_factory, name)
        return found[0] if found else None

    async def routes(self) -> list[dict[str, Any]]:
        return await repo_trunks.route_views(self.session_factory)

    async def route(self, prefix: str) -> dict[str, Any] | None:
        found = await repo_trunks.route_views(self.session_factory, prefix)
        return found[0] if found else None

    async def _apply(self, doc: dict[str, Any], fields: tuple[str, ...], actor: str, action: str, subject_type: str,
                     subject_id: str, details: dict[str, Any]) -> None:
        try:
            await repo_trunks.apply_routing(self.session_factory, doc, self.secret_box, actor=actor, action=action,
                                            subject_type=subject_type, subject_id=subject_id, details=details)
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
        await repo_trunks.delete_trunk(self.session_factory, name, actor=actor)
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
        if not await repo_trunks.delete_route(self.session_factory, prefix, actor=actor):
            raise RoutingChangeError(404, f"no route for prefix {prefix!r}", field="prefix", code="no_route",
                                     prefix=prefix)
        await self._reload()

