"""The admin page for trunks and routes (``/ui/admin/trunks``) over HTTP: forms that go through the API's own
service (validation, refusals, audit, the running switch's table reloaded), per-field errors in the page's
language, nothing stored on error, admin only, CSRF."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from provisioning.ui.i18n import translate
from switch.services.trunks import RoutingTable
from switch.store import models as m
from switch.store import repo_users

from .conftest import Ui, csrf_of

PAGE = "/ui/admin/trunks"
CARRIER = {"name": "carrierA", "host": "192.0.2.10", "port": "5080", "transport": "tcp", "username": "acct1",
           "password": "t-secret", "allowed_sources": "192.0.2.0/28, 198.51.100.7", "emergency": "on", "enabled": "on"}


async def _admin(ui_app: Ui) -> str:
    assert await ui_app.login() == 302
    return csrf_of(await (await ui_app.client.get(PAGE)).text())


def _table(ui_app: Ui) -> RoutingTable:
    assert ui_app.trunks is not None
    return ui_app.trunks.table


def _route_names(table: RoutingTable, prefix: str) -> list[str] | None:
    """The trunk names (failover order) the running switch routes ``prefix`` by, None without that route."""
    for key, entry in table.routes.matches(prefix[1:]):
        if key == prefix[1:]:
            return [table.trunks[t].name for t in entry.trunk_ids]
    return None


def _field_error(html: str, field: str) -> str | None:
    found = re.search(rf'<span class="error" id="[^"]+-error" data-field="{field}">([^<]*)</span>', html)
    return found.group(1) if found else None


async def _audit(ui_app: Ui, subject_type: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    async with ui_app.db.session_factory() as session:
        rows = (await session.execute(select(m.AuditEvent).where(m.AuditEvent.subject_type == subject_type)
                                      .order_by(m.AuditEvent.id))).scalars().all()
    return [(r.actor, r.action, r.subject_id, dict(r.details or {})) for r in rows]


async def test_admin_creates_a_trunk_with_every_field_and_the_running_switch_has_it(ui_app: Ui) -> None:
    csrf = await _admin(ui_app)
    page = await ui_app.client.get(PAGE)
    html = await page.text()
    for field_id in ("nt-name", "nt-host", "nt-port", "nt-transport", "nt-username", "nt-password", "nt-acl",
                     "nt-emergency", "nt-enabled", "rt-prefix", "rt-trunk-1", "rt-enabled", "rt-desc"):
        assert f'<label for="{field_id}">' in html and f'id="{field_id}"' in html, f"{field_id} is labelled"
    assert 'id="nt-port" name="port" type="text" value="" inputmode="numeric"' in html
    resp = await ui_app.client.post(PAGE, data={"csrf": csrf, **CARRIER})
    html = await resp.text()
    assert resp.status == 200 and translate("nb", "trunk_created", name="carrierA") in html
    assert 'data-trunk="carrierA"' in html and "t-secret" not in html
    trunk = _table(ui_app).by_name["carrierA"]
    assert (trunk.host, trunk.port, trunk.transport, trunk.username, trunk.password, trunk.emergency, trunk.enabled) \
        == ("192.0.2.10", 5080, "tcp", "acct1", "t-secret", True, True)
    assert [str(n) for n in trunk.allowed_sources] == ["192.0.2.0/28", "198.51.100.7/32"]
    audit = await _audit(ui_app, "trunk")
    assert audit[-1][:3] == ("operator:admin", "trunk.create", "carrierA") and "password" not in audit[-1][3]


async def test_refused_trunk_fields_are_named_in_the_pages_language_and_nothing_is_stored(ui_app: Ui) -> None:
    csrf = await _admin(ui_app)
    c = ui_app.client
    resp = await c.post(PAGE, data={"csrf": csrf, **CARRIER, "port": "fem"})
    html = await resp.text()
    assert resp.status == 422 and translate("nb", "nothing_changed") in html
    assert _field_error(html, "port") == translate("nb", "routing_err_port")
    assert 'value="fem"' in html and 'value="192.0.2.10"' in html, "what was typed is shown again"
    resp = await c.post(PAGE, data={"csrf": csrf, **CARRIER, "port": "70000"})
    assert resp.status == 422 and _field_error(await resp.text(), "port") == "Må være et tall fra 1 til 65535."
    resp = await c.post(PAGE, data={"csrf": csrf, **CARRIER, "allowed_sources": "192.0.2.0/33"})
    assert resp.status == 422
    assert _field_error(await resp.text(), "allowed_sources") == translate("nb", "routing_err_bad_cidr",
                                                                           cidr="192.0.2.0/33")
    resp = await c.post(PAGE, data={"csrf": csrf, **CARRIER, "name": "bad name!"})
    assert resp.status == 422 and _field_error(await resp.text(), "name") == translate("nb", "routing_err_name")
    resp = await c.post(PAGE, data={"csrf": csrf, **CARRIER, "host": ""})
    assert resp.status == 422 and _field_error(await resp.text(), "host") == "Må fylles ut."
    resp = await c.post(PAGE, data={"csrf": csrf, **CARRIER, "transport": "pigeon"})
    assert resp.status == 422 and "Må være en av udp, tcp, tls" in (_field_error(await resp.text(), "transport") or "")
    await c.get("/ui/lang/en?next=/ui/admin/trunks")
    resp = await c.post(PAGE, data={"csrf": csrf, **CARRIER, "port": "0"})
    assert resp.status == 422 and _field_error(await resp.text(), "port") == "Must be a number from 1 to 65535."
    assert "carrierA" not in _table(ui_app).by_name and await _audit(ui_app, "trunk") == []
    async with ui_app.db.session_factory() as session:
        assert (await session.execute(select(m.Trunk))).scalars().all() == [], "nothing stored on error"
    assert (await c.post(PAGE, data={"csrf": csrf, **CARRIER})).status == 200
    resp = await c.post(PAGE, data={"csrf": csrf, **CARRIER, "host": "192.0.2.99"})
    assert resp.status == 409
    assert _field_error(await resp.text(), "name") == translate("en", "routing_err_trunk_exists", name="carrierA")
    assert _table(ui_app).by_name["carrierA"].host == "192.0.2.10"


async def test_admin_edits_a_trunk_and_removes_its_password(ui_app: Ui) -> None:
    csrf = await _admin(ui_app)
    c = ui_app.client
    assert (await c.post(PAGE, data={"csrf": csrf, **CARRIER})).status == 200
    form = await (await c.get(f"{PAGE}/carrierA")).text()
    assert 'value="192.0.2.10"' in form and 'value="5080"' in form and 'id="et-nopw"' in form
    assert 't-secret' not in form
    resp = await c.post(f"{PAGE}/carrierA", data={"csrf": csrf, "host": "192.0.2.11", "port": "x", "transport": "udp"})
    assert resp.status == 422 and _field_error(await resp.text(), "port") == translate("nb", "routing_err_port")
    assert _table(ui_app).by_name["carrierA"].host == "192.0.2.10", "nothing changed on error"
    resp = await c.post(f"{PAGE}/carrierA", data={"csrf": csrf, "host": "192.0.2.11", "port": "5060",
                                                  "transport": "udp", "username": "", "remove_password": "on",
                                                  "allowed_sources": "", "enabled": "on"})
    assert resp.status == 200 and translate("nb", "trunk_updated", name="carrierA") in await resp.text()
    trunk = _table(ui_app).by_name["carrierA"]
    assert (trunk.host, trunk.port, trunk.transport, trunk.username, trunk.password, trunk.emergency) \
        == ("192.0.2.11", 5060, "udp", None, None, False)
    async with ui_app.db.session_factory() as session:
        row = (await session.execute(select(m.Trunk).where(m.Trunk.name == "carrierA"))).scalar_one()
    assert row.password_enc is None
    assert (await _audit(ui_app, "trunk"))[-1][:3] == ("operator:admin", "trunk.update", "carrierA")
    # A new password is stored sealed, and an empty password field keeps it.
    await c.post(f"{PAGE}/carrierA", data={"csrf": csrf, "password": "new-secret", "enabled": "on"})
    await c.post(f"{PAGE}/carrierA", data={"csrf": csrf, "password": "", "enabled": "on"})
    async with ui_app.db.session_factory() as session:
        row = (await session.execute(select(m.Trunk).where(m.Trunk.name == "carrierA"))).scalar_one()
    assert row.password_enc is not None and "new-secret" not in row.password_enc
    assert _table(ui_app).by_name["carrierA"].password == "new-secret"
    assert (await c.get(f"{PAGE}/nosuch")).status == 404


async def test_routes_with_ordered_trunks_are_set_changed_and_deleted(ui_app: Ui) -> None:
    csrf = await _admin(ui_app)
    c = ui_app.client
    for name, host in (("carrierA", "192.0.2.10"), ("carrierB", "192.0.2.20")):
        assert (await c.post(PAGE, data={"csrf": csrf, "name": name, "host": host, "transport": "udp",
                                         "enabled": "on"})).status == 200
    resp = await c.post("/ui/admin/routes", data={"csrf": csrf, "prefix": "+47", "trunk_1": "carrierB", "trunk_2": "",
                                                  "trunk_3": "carrierA", "enabled": "on", "description": "Norway"})
    html = await resp.text()
    assert resp.status == 200 and translate("nb", "route_saved", prefix="+47", trunks="carrierB → carrierA") in html
    assert _route_names(_table(ui_app), "+47") == ["carrierB", "carrierA"], "the running switch routes by it now"
    assert (await _audit(ui_app, "route"))[-1][:3] == ("operator:admin", "route.put", "+47")
    # "Edit" fills the form with the route; changing the order replaces the list.
    form = await (await c.get(PAGE, params={"route": "+47"})).text()
    assert re.search(r'id="rt-trunk-1" name="trunk_1"><option value="">—</option><option>carrierA</option>'
                     r'<option selected>carrierB</option>', form)
    resp = await c.post("/ui/admin/routes", data={"csrf": csrf, "prefix": "+47", "trunk_1": "carrierA",
                                                  "enabled": "on"})
    assert resp.status == 200 and _route_names(_table(ui_app), "+47") == ["carrierA"]
    # Refusals, each next to its field, in Norwegian; nothing changes.
    resp = await c.post("/ui/admin/routes", data={"csrf": csrf, "prefix": "47", "trunk_1": "carrierA"})
    assert resp.status == 400 and _field_error(await resp.text(), "prefix") == translate("nb", "routing_err_prefix")
    resp = await c.post("/ui/admin/routes", data={"csrf": csrf, "prefix": "+46", "trunk_1": ""})
    assert resp.status == 422 and _field_error(await resp.text(), "trunks") == "Velg minst én trunk."
    resp = await c.post("/ui/admin/routes", data={"csrf": csrf, "prefix": "+46", "trunk_1": "carrierA",
                                                  "trunk_2": "carrierA"})
    assert resp.status == 422 and _field_error(await resp.text(), "trunks") == translate("nb", "routing_err_trunk_twice")
    resp = await c.post("/ui/admin/routes", data={"csrf": csrf, "prefix": "+46", "trunk_1": "ghost"})
    assert resp.status == 422
    assert _field_error(await resp.text(), "trunks") == translate("nb", "routing_err_unknown_trunk", name="ghost")
    assert _route_names(_table(ui_app), "+46") is None
    # The default route "+" is a route like any other.
    assert (await c.post("/ui/admin/routes", data={"csrf": csrf, "prefix": "+", "trunk_1": "carrierB",
                                                   "enabled": "on"})).status == 200
    assert _route_names(_table(ui_app), "+") == ["carrierB"]
    # A trunk that routes use cannot be deleted: said in words, and it stays.
    resp = await c.post(f"{PAGE}/carrierA/delete", data={"csrf": csrf})
    html = await resp.text()
    assert resp.status == 409 and translate("nb", "routing_err_trunk_in_use", name="carrierA", routes="+47") in html
    assert "carrierA" in _table(ui_app).by_name
    resp = await c.post("/ui/admin/routes/delete", data={"csrf": csrf, "prefix": "+47"})
    assert resp.status == 200 and translate("nb", "route_deleted", prefix="+47") in await resp.text()
    assert _route_names(_table(ui_app), "+47") is None
    resp = await c.post("/ui/admin/routes/delete", data={"csrf": csrf, "prefix": "+47"})
    assert resp.status == 404 and translate("nb", "routing_err_no_route", prefix="+47") in await resp.text()
    resp = await c.post(f"{PAGE}/carrierA/delete", data={"csrf": csrf})
    assert resp.status == 200 and "carrierA" not in _table(ui_app).by_name
    assert [a[:3] for a in await _audit(ui_app, "route")][-1] == ("operator:admin", "route.delete", "+47")
    assert (await _audit(ui_app, "trunk"))[-1][:3] == ("operator:admin", "trunk.delete", "carrierA")


async def test_only_admins_change_trunks_and_every_form_needs_the_csrf_token(ui_app: Ui) -> None:
    csrf = await _admin(ui_app)
    c = ui_app.client
    assert (await c.post(PAGE, data={"csrf": csrf, **CARRIER})).status == 200
    resp = await c.post(PAGE, data={"csrf": "forged", **CARRIER, "name": "carrierB"})
    assert resp.status == 403 and translate("nb", "csrf_failed") in await resp.text()
    for path, data in ((f"{PAGE}/carrierA", {"host": "192.0.2.66"}), (f"{PAGE}/carrierA/delete", {}),
                       ("/ui/admin/routes", {"prefix": "+47", "trunk_1": "carrierA"}),
                       ("/ui/admin/routes/delete", {"prefix": "+47"})):
        assert (await c.post(path, data=data)).status == 403, path
    await c.post("/ui/logout", data={"csrf": csrf})
    await repo_users.create_user(ui_app.db.session_factory, "helpdesk", "support", password="support-password-1")
    for user, password in (("helpdesk", "support-password-1"), ("reader", "reader-password-1")):
        assert await ui_app.login(user, password) == 302
        own = csrf_of(await (await c.get("/ui/")).text())
        assert (await c.get(PAGE)).status == 403 and (await c.get(f"{PAGE}/carrierA")).status == 403
        for path, data in ((PAGE, {**CARRIER, "name": "carrierB"}), (f"{PAGE}/carrierA", {"host": "192.0.2.66"}),
                           (f"{PAGE}/carrierA/delete", {}), ("/ui/admin/routes", {"prefix": "+47", "trunk_1": "carrierA"})):
            resp = await c.post(path, data={"csrf": own, **data})
            assert resp.status == 403 and translate("nb", "forbidden") in await resp.text(), (user, path)
        await c.post("/ui/logout", data={"csrf": own})
    table = _table(ui_app)
    assert set(table.by_name) == {"carrierA"} and table.by_name["carrierA"].host == "192.0.2.10"
    assert _route_names(table, "+47") is None
    assert [a[1] for a in await _audit(ui_app, "trunk")] == ["trunk.create"]
