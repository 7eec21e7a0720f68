"""The web pages over HTTP (no browser): login, CSRF, throttling, roles, pages, Min side isolation."""

from __future__ import annotations

import re

from sqlalchemy import select

from provisioning.ui.i18n import TEXTS, pick_language, translate
from switch.store import models as m
from switch.store import repo_users

from .conftest import Ui, csrf_of


async def test_pages_need_a_login_and_come_back_after_it(ui_app: Ui) -> None:
    c = ui_app.client
    resp = await c.get("/ui/customers/C1001", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/ui/login?next=/ui/customers/C1001"
    page = await c.get("/ui/login?next=/ui/customers/C1001")
    html = await page.text()
    assert 'name="next" value="/ui/customers/C1001"' in html
    resp = await c.post("/ui/login", data={"csrf": csrf_of(html), "username": "admin",
                                           "password": ui_app.admin_password, "next": "/ui/customers/C1001"},
                        allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/ui/customers/C1001"
    cookie = resp.cookies["ss_ui"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/ui/"
    page = await c.get("/ui/customers/C1001")
    assert page.status == 200 and "Kari Nordmann" in await page.text()


async def test_login_refuses_a_form_without_its_csrf_token_and_an_open_redirect(ui_app: Ui) -> None:
    c = ui_app.client
    resp = await c.post("/ui/login", data={"csrf": "forged", "username": "admin", "password": ui_app.admin_password})
    assert resp.status == 403
    page = await c.get("/ui/login")
    resp = await c.post("/ui/login", data={"csrf": csrf_of(await page.text()), "username": "admin",
                                           "password": ui_app.admin_password, "next": "//evil.example/"},
                        allow_redirects=False)
    assert resp.headers["Location"] == "/ui/"


async def test_wrong_passwords_are_throttled_with_retry_after_and_do_not_reveal_users(ui_app: Ui) -> None:
    c = ui_app.client
    statuses = []
    for _ in range(8):
        statuses.append(await ui_app.login("admin", "wrong-password"))
    # A burst of about five failures blocks the (source, user) pair (switch.transport.ratelimit).
    assert statuses[:5] == [401] * 5 and 429 in statuses[5:], statuses
    page = await c.get("/ui/login")
    resp = await c.post("/ui/login", data={"csrf": csrf_of(await page.text()), "username": "admin",
                                           "password": ui_app.admin_password})
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    # An unknown user gets the same answer as a wrong password.
    page = await c.get("/ui/login")
    unknown = await c.post("/ui/login", data={"csrf": csrf_of(await page.text()), "username": "nobody",
                                              "password": "x" * 12})
    assert unknown.status == 401
    assert translate("nb", "login_failed") in await unknown.text()


async def test_every_form_post_needs_the_session_csrf_token(ui_app: Ui) -> None:
    assert await ui_app.login() == 302
    resp = await ui_app.client.post("/ui/logout", data={"csrf": "nope"}, allow_redirects=False)
    assert resp.status == 403 and translate("nb", "csrf_failed") in await resp.text()
    page = await ui_app.client.get("/ui/")
    resp = await ui_app.client.post("/ui/logout", data={"csrf": csrf_of(await page.text())}, allow_redirects=False)
    assert resp.status == 302
    # The session is revoked server-side, not just forgotten by the browser.
    async with ui_app.db.session_factory() as session:
        row = (await session.execute(select(m.WebSession))).scalar_one()
    assert row.revoked_at is not None


async def test_search_by_number_mac_name_and_customer_number(ui_app: Ui) -> None:
    assert await ui_app.login() == 302
    c = ui_app.client
    for q, where in [("22000001", "/ui/lines/+4722000001"), ("+47 22 00 00 03", "/ui/lines/+4722000003"),
                     ("000E08ABCD01", "/ui/adapters/000e08abcd01"), ("00:0e:08:ab:cd:02", "/ui/adapters/000e08abcd02"),
                     ("c2002", "/ui/customers/C2002"), ("Nordmann", "/ui/customers/C1001")]:
        resp = await c.get("/ui/search", params={"q": q}, allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"] == where, q
    many = await c.get("/ui/search", params={"q": "2200000"})
    html = await many.text()
    assert all(n in html for n in ("+4722000001", "+4722000002", "+4722000003"))
    none = await c.get("/ui/search", params={"q": "Ingen slik"})
    assert "Ingen treff" in await none.text()


async def test_adapter_page_draws_the_four_lamps_with_words_and_reasons(ui_app: Ui) -> None:
    assert await ui_app.login() == 302
    html = await (await ui_app.client.get("/ui/adapters/000E08ABCD01")).text()
    lamps = dict(re.findall(r'data-lamp="(\w+)" data-state="(\w+)"', html))
    assert lamps == {"pwr": "ok", "wan": "warning", "tel1": "ok", "tel2": "off"}
    assert 'data-lamp="wan" data-state="warning" data-colour="red" data-pattern="blinking"' in html
    assert "rød, blinker" in html and "wrong password" in html and "no answer to 3 pings" in html
    part = await ui_app.client.get("/ui/adapters/000E08ABCD01/lamps")
    assert (await part.text()).count('class="lamp"') == 4
    assert (await ui_app.client.get("/ui/adapters/not-a-mac")).status == 404


async def test_dashboard_lists_adapters_with_a_red_or_unlit_lamp(ui_app: Ui) -> None:
    assert await ui_app.login() == 302
    html = await (await ui_app.client.get("/ui/")).text()
    assert 'id="registered">1<' in html and "00:0e:08:ab:cd:01" in html


async def test_readonly_user_sees_pages_but_has_no_resync_button(ui_app: Ui) -> None:
    assert await ui_app.login("reader", "reader-password-1") == 302
    page = await ui_app.client.get("/ui/adapters/000E08ABCD01")
    assert page.status == 200 and "/resync" not in await page.text()


async def test_english_on_request(ui_app: Ui) -> None:
    resp = await ui_app.client.get("/ui/login", headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert "Log in" in await resp.text()
    await ui_app.client.get("/ui/lang/nb?next=/ui/login")
    resp = await ui_app.client.get("/ui/login", headers={"Accept-Language": "en-GB"})
    assert "Logg inn" in await resp.text()


def test_every_text_has_both_languages_and_language_choice() -> None:
    assert all(nb and en for nb, en in TEXTS.values())
    assert pick_language(None, "nn-NO,en;q=0.5") == "nb"
    assert pick_language("en", "nb") == "en"
    assert pick_language(None, None) == "nb"


async def test_min_side_shows_only_the_customers_own_lines(ui_app: Ui) -> None:
    sf = ui_app.db.session_factory
    pw1 = await repo_users.set_customer_password(sf, "C1001")
    await repo_users.set_customer_password(sf, "C2002", "other-customer-pw")
    assert await ui_app.login("C1001", pw1, path="/min-side/login") == 302
    c = ui_app.client
    html = await (await c.get("/min-side/")).text()
    assert "+4722000001" in html and "+4722000002" in html and "+4722000003" not in html
    csrf = csrf_of(html)
    # Another customer's line: 404, as if it did not exist.
    for path in ("/min-side/lines/+4722000003/barring", "/min-side/lines/22000003/forwarding/unconditional"):
        resp = await c.post(path, data={"csrf": csrf, "target": "22000001"})
        assert resp.status == 404
    # The operator pages do not accept a customer session.
    resp = await c.get("/ui/", allow_redirects=False)
    assert resp.status == 302


async def test_min_side_password_change(ui_app: Ui) -> None:
    sf = ui_app.db.session_factory
    pw = await repo_users.set_customer_password(sf, "C1001")
    assert await ui_app.login("C1001", pw, path="/min-side/login") == 302
    c = ui_app.client
    csrf = csrf_of(await (await c.get("/min-side/password")).text())
    bad = await c.post("/min-side/password", data={"csrf": csrf, "current": "wrong", "new": "n" * 12, "repeat": "n" * 12})
    assert bad.status == 400
    ok = await c.post("/min-side/password", data={"csrf": csrf, "current": pw, "new": "new-password-1",
                                                  "repeat": "new-password-1"}, allow_redirects=False)
    assert ok.status == 302
    assert await repo_users.authenticate_customer(sf, "C1001", "new-password-1") is not None
    page = await c.get("/min-side/password?changed=1")
    assert "Passordet er byttet" in await page.text()


async def test_operator_sets_forwarding_and_barring_and_the_policy_service_has_it(ui_app: Ui) -> None:
    assert await ui_app.login() == 302
    c = ui_app.client
    html = await (await c.get("/ui/lines/22000001")).text()
    csrf = csrf_of(html)
    resp = await c.post("/ui/lines/+4722000001/forwarding/no_answer",
                        data={"csrf": csrf, "target": "22000002", "timeout_s": "25", "action": "save"})
    assert resp.status == 200
    policy = ui_app.policy
    assert policy is not None
    line_id = next(li for li in policy.lines.by_id.values() if li.number == "+4722000001").line_id
    rules = {str(r.kind): (r.target, r.timeout_s) for r in policy.forwarding(line_id)}
    assert rules == {"no_answer": ("+4722000002", 25)}
    # The same validation as the API: never an emergency number, never the line itself.
    for target in ("112", "22000001"):
        bad = await c.post("/ui/lines/+4722000001/forwarding/unconditional",
                           data={"csrf": csrf, "target": target, "action": "save"})
        assert bad.status == 400 and 'role="alert"' in await bad.text()
    resp = await c.post("/ui/lines/+4722000001/barring", data={"csrf": csrf, "category": ["international", "premium"]})
    assert resp.status == 200
    assert {str(x) for x in policy.state.lines[line_id].barring} == {"international", "premium"}
    page = await (await c.get("/ui/lines/22000001")).text()
    assert 'value="international" checked' in page and 'value="mobile" checked' not in page
    resp = await c.post("/ui/lines/+4722000001/forwarding/no_answer", data={"csrf": csrf, "action": "delete"})
    assert policy.forwarding(line_id) == []
    # Read-only users see the editors disabled and cannot post.
    await c.post("/ui/logout", data={"csrf": csrf_of(page)})
    assert await ui_app.login("reader", "reader-password-1") == 302
    page = await (await c.get("/ui/lines/22000001")).text()
    assert "<fieldset disabled>" in page
    resp = await c.post("/ui/lines/+4722000001/barring", data={"csrf": csrf_of(page), "category": "mobile"})
    assert resp.status == 403


async def test_suspend_and_lift_with_notes_from_the_customer_page(ui_app: Ui) -> None:
    assert await ui_app.login() == 302
    c = ui_app.client
    csrf = csrf_of(await (await c.get("/ui/customers/C1001")).text())
    resp = await c.post("/ui/customers/C1001/suspensions", data={
        "csrf": csrf, "level": "soft", "reason": "unpaid", "note": "faktura 1234", "line": ""}, allow_redirects=False)
    assert resp.status == 302
    html = await (await c.get("/ui/customers/C1001")).text()
    assert "faktura 1234" in html and "operator:admin" in html and "/lift" in html
    policy = ui_app.policy
    assert policy is not None
    cid = next(iter(x for x in policy.state.customers.values() if x.external_id == "C1001")).customer_id
    active = policy.active_suspensions(cid)
    assert len(active) == 1
    resp = await c.post(f"/ui/suspensions/{active[0].id}/lift",
                        data={"csrf": csrf, "note": "betalt", "back": "/ui/customers/C1001"}, allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/ui/customers/C1001"
    assert policy.active_suspensions(cid) == []
    html = await (await c.get("/ui/customers/C1001")).text()
    assert "betalt" in html, "the history keeps the lift and its note"
    bad = await c.post("/ui/customers/C1001/suspensions", data={"csrf": csrf, "level": "soft", "reason": "unpaid",
                                                                "line": "22000003"})
    assert bad.status == 400, "another customer's line"


async def test_unclaimed_adapter_is_assigned_to_a_customer(ui_app: Ui) -> None:
    from switch.store import repo_adapters
    from switch.store.base import utcnow

    await repo_adapters.record_unclaimed(ui_app.db.session_factory, "00:0E:08:AB:CD:77", at=utcnow(),
                                         remote_addr="192.0.2.9", user_agent="Cisco/SPA112-1.4.1", model_hint="spa112")
    assert await ui_app.login() == 302
    c = ui_app.client
    html = await (await c.get("/ui/unclaimed")).text()
    assert "00:0e:08:ab:cd:77" in html
    bad = await c.post("/ui/unclaimed/000e08abcd77/assign", data={"csrf": csrf_of(html), "customer": "C9999"})
    assert bad.status == 400
    resp = await c.post("/ui/unclaimed/000e08abcd77/assign", data={"csrf": csrf_of(html), "customer": "C2002"},
                        allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/ui/adapters/000e08abcd77"
    assert "00:0e:08:ab:cd:77" not in await (await c.get("/ui/unclaimed")).text()
    audit = await (await c.get("/ui/audit", params={"subject_type": "adapter", "subject_id": "000e08abcd77"})).text()
    assert "adapter.assign" in audit and "operator:admin" in audit


async def test_bulk_import_lists_every_problem_and_changes_nothing_until_the_file_is_right(ui_app: Ui) -> None:
    assert await ui_app.login() == 302
    c = ui_app.client
    csrf = csrf_of(await (await c.get("/ui/import")).text())
    bad = ("customers:\n  - id: C7007\n    name: Ny\n    adapters:\n      - mac: 00:0E:08:AB:CD:70\n        model: nope\n"
           "        lines:\n          - {port: 9, number: '22000070'}\n")
    resp = await c.post("/ui/import", data={"csrf": csrf, "text": bad})
    html = await resp.text()
    assert resp.status == 422
    assert "customers[0].adapters[0].model" in html and "customers[0].adapters[0].lines[0].port" in html
    assert (await c.get("/ui/customers/C7007")).status == 404
    good = bad.replace("model: nope", "model: spa112").replace("port: 9", "port: 1")
    resp = await c.post("/ui/import", data={"csrf": csrf, "text": good})
    assert resp.status == 200 and "Importert" in await resp.text()
    assert (await c.get("/ui/customers/C7007")).status == 200
    assert ui_app.policy is not None and ui_app.policy.lines.line_for_number("22000070") is not None, \
        "the running switch sees the new line at once"


async def test_admin_pages_users_and_tokens_are_for_admins_only(ui_app: Ui) -> None:
    sf = ui_app.db.session_factory
    await repo_users.create_user(sf, "helpdesk", "support", password="support-password-1")
    assert await ui_app.login("helpdesk", "support-password-1") == 302
    c = ui_app.client
    for path in ("/ui/admin/users", "/ui/admin/tokens", "/ui/admin/trunks"):
        assert (await c.get(path)).status == 403, path
    await c.post("/ui/logout", data={"csrf": csrf_of(await (await c.get("/ui/")).text())})
    assert await ui_app.login() == 302
    html = await (await c.get("/ui/admin/users")).text()
    resp = await c.post("/ui/admin/users", data={"csrf": csrf_of(html), "username": "nils", "role": "readonly"})
    page = await resp.text()
    shown = re.search(r"<code>([^<]+)</code>", page)
    assert resp.status == 200 and shown is not None
    assert await repo_users.authenticate_user(sf, "nils", shown.group(1)) is not None
    html = await (await c.get("/ui/admin/tokens")).text()
    resp = await c.post("/ui/admin/tokens", data={"csrf": csrf_of(html), "role": "customer", "customer": "C1001",
                                                  "label": "Kari app"})
    page = await resp.text()
    assert "sst_" in page
    token_id = re.search(r'/ui/admin/tokens/(\d+)/revoke', page)
    assert token_id is not None
    resp = await c.post(f"/ui/admin/tokens/{token_id.group(1)}/revoke", data={"csrf": csrf_of(page)},
                        allow_redirects=False)
    assert resp.status == 302
    from switch.store import repo_tokens

    listed = await repo_tokens.list_tokens(sf)
    assert listed[-1].revoked_at is not None and listed[-1].label == "Kari app"
    assert (await c.get("/ui/admin/trunks")).status == 200


async def test_staging_values_page_shows_the_adapters_own_url_and_is_audited(ui_app: Ui) -> None:
    assert await ui_app.login() == 302
    c = ui_app.client
    html = await (await c.get("/ui/adapters/000e08abcd01/staging")).text()
    assert "Profile_Rule" in html and "/cfg/" in html
    audit = await (await c.get("/ui/audit", params={"subject_type": "adapter", "subject_id": "000e08abcd01"})).text()
    assert "adapter.profile_url.read" in audit
    await c.post("/ui/logout", data={"csrf": csrf_of(html)})
    assert await ui_app.login("reader", "reader-password-1") == 302
    assert (await c.get("/ui/adapters/000e08abcd01/staging")).status == 403, "credentials are not for read-only users"


async def test_admin_disables_re_roles_and_resets_an_operator_user(ui_app: Ui) -> None:
    sf = ui_app.db.session_factory
    await repo_users.create_user(sf, "helpdesk", "support", password="support-password-1")
    assert await ui_app.login() == 302
    c = ui_app.client
    csrf = csrf_of(await (await c.get("/ui/admin/users")).text())
    resp = await c.post("/ui/admin/users/helpdesk", data={"csrf": csrf, "action": "role", "role": "readonly"})
    assert resp.status == 200
    assert {u.username: u.role.value for u in await repo_users.list_users(sf)}["helpdesk"] == "readonly"
    resp = await c.post("/ui/admin/users/helpdesk", data={"csrf": csrf, "action": "reset"})
    shown = re.search(r"<code>([^<]+)</code>", await resp.text())
    assert shown is not None and await repo_users.authenticate_user(sf, "helpdesk", shown.group(1)) is not None
    assert await repo_users.authenticate_user(sf, "helpdesk", "support-password-1") is None
    resp = await c.post("/ui/admin/users/helpdesk", data={"csrf": csrf, "action": "disable"})
    assert resp.status == 200 and await repo_users.authenticate_user(sf, "helpdesk", shown.group(1)) is None
    resp = await c.post("/ui/admin/users/admin", data={"csrf": csrf, "action": "disable"})
    assert resp.status == 400, "an admin cannot lock itself out"
    assert (await c.post("/ui/admin/users/nobody", data={"csrf": csrf, "action": "enable"})).status == 400


async def test_customer_page_shows_the_postal_address(ui_app: Ui) -> None:
    from switch.store import repo_manage

    await repo_manage.patch_customer(ui_app.db.session_factory, "C1001",
                                     {"address": {"street": "Storgata 1", "postcode": "0150", "city": "Oslo"}},
                                     actor="test")
    assert await ui_app.login() == 302
    html = await (await ui_app.client.get("/ui/customers/C1001")).text()
    assert re.search(r"<dt>Postadresse</dt><dd>Storgata 1, 0150 Oslo</dd>", html), html
    html = await (await ui_app.client.get("/ui/customers/C2002")).text()
    assert re.search(r"<dt>Postadresse</dt><dd>Ingen</dd>", html)


async def test_price_look_up_form_in_both_languages(ui_app: Ui) -> None:
    assert await ui_app.login("reader", "reader-password-1") == 302
    html = await (await ui_app.client.get("/ui/")).text()
    assert '<a href="/ui/price">Prisoppslag</a>' in html, "linked from the navigation"
    html = await (await ui_app.client.get("/ui/price")).text()
    assert '<label for="p-number">Nummer som ringes</label>' in html and 'id="p-number" name="number"' in html
    assert "price-answer" not in html
    resp = await ui_app.client.get("/ui/price?number=%2B46812345678&seconds=61&kind=private")
    html = await resp.text()
    assert resp.status == 200
    assert re.search(r"<dt>Pris for 61 s</dt><dd><strong>2,41 kr</strong> \(241 øre\)</dd>", html), html
    assert "<dt>Treff i prislisten</dt><dd>+46</dd>" in html and "<dt>Inkludert i abonnementet</dt><dd>Nei</dd>" in html
    resp = await ui_app.client.get("/ui/price?number=22000003&customer=C2002", headers={"Cookie": "ss_lang=en"})
    html = await resp.text()
    assert "<dt>Included in the subscription</dt><dd>Yes</dd>" in html and "Price look-up" in html
    resp = await ui_app.client.get("/ui/price?number=abc")
    assert resp.status == 400 and 'role="alert">number: &#39;abc&#39; is not a number' in await resp.text()
