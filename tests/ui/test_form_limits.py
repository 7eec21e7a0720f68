"""Every text field of the web forms has the API's string limit; nothing is stored past it.

Before provisioning/ui/limits.py a 1 MB note was stored through the suspension
form (the API refused it, the pages did not). The bulk import's fields have the
same limit, checked inside the file by the importer.
"""

from __future__ import annotations

import json

from sqlalchemy import select

from provisioning.guards import MAX_STRING
from switch.store import models as m

from .conftest import Ui, csrf_of


async def test_a_long_form_field_is_refused_by_name_and_nothing_is_stored(ui_app: Ui) -> None:
    assert await ui_app.login() == 302
    c = ui_app.client
    csrf = csrf_of(await (await c.get("/ui/customers/C1001")).text())
    long_note = "x" * (MAX_STRING + 1)
    resp = await c.post("/ui/customers/C1001/suspensions", data={
        "csrf": csrf, "level": "soft", "reason": "unpaid", "note": long_note, "line": ""}, allow_redirects=False)
    assert resp.status == 400
    html = await resp.text()
    assert "«note»" in html and f"høyst {MAX_STRING} tegn" in html and "Ingenting ble lagret" in html
    policy = ui_app.policy
    assert policy is not None
    cid = next(x for x in policy.state.customers.values() if x.external_id == "C1001").customer_id
    assert policy.active_suspensions(cid) == []
    # at the limit it is taken
    resp = await c.post("/ui/customers/C1001/suspensions", data={
        "csrf": csrf, "level": "soft", "reason": "unpaid", "note": "y" * MAX_STRING, "line": ""},
        allow_redirects=False)
    assert resp.status == 302
    assert len(policy.active_suspensions(cid)) == 1


async def test_min_side_login_with_a_long_field_is_refused_before_the_handler(ui_app: Ui) -> None:
    c = ui_app.client
    csrf = csrf_of(await (await c.get("/min-side/login")).text())
    resp = await c.post("/min-side/login", data={"csrf": csrf, "username": "C1001", "password": "p" * 5000},
                        headers={"Accept-Language": "en"}, allow_redirects=False)
    assert resp.status == 400
    assert "takes at most 1000 characters" in await resp.text()


async def test_bulk_import_refuses_a_long_field_inside_the_file_and_stores_nothing(ui_app: Ui) -> None:
    assert await ui_app.login() == 302
    c = ui_app.client
    csrf = csrf_of(await (await c.get("/ui/import")).text())
    doc = {"customers": [{"id": "C3003", "name": "Per", "language": "nb",
                          "address": {"street": "s" * (MAX_STRING + 1), "postcode": "0150", "city": "Oslo"},
                          "adapters": []}]}
    resp = await c.post("/ui/import", data={"csrf": csrf, "text": json.dumps(doc)})  # the text box may be long
    assert resp.status == 422
    html = await resp.text()
    assert "customers[0].address.street" in html and f"longer than {MAX_STRING} characters" in html
    async with ui_app.db.session_factory() as session:
        stored = (await session.execute(select(m.Customer).where(m.Customer.external_id == "C3003"))).first()
    assert stored is None
