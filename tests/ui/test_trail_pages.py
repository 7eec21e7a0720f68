""""Why did this call fail" in the page's language: a call refused by the real policy (a suspension set and a
barring set in the operator pages) is stored as the switch stores it, and the line page and Min side say the
trail in Norwegian (English on an English page, exactly as the engine wrote it)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

from switch.media.catalogue import load_catalogue
from switch.services.numbering import normalise
from switch.services.policy.engine import Refuse, decide
from switch.services.routing import FromLine, RoutingSnapshot
from switch.services.trunks import RoutingTable
from switch.store import models as m
from switch.store import repo_users
from switch.store.engine import write_session

from .conftest import Ui, csrf_of


async def _refused_call(ui_app: Ui, caller: str, dialled: str) -> Refuse:
    """Decide a call with the policy the pages changed, and store its record as the call manager does."""
    policy = ui_app.policy
    assert policy is not None
    line = policy.lines.by_number[caller]
    snapshot = RoutingSnapshot(lines_by_number=policy.lines.by_number, table=RoutingTable())
    d = decide(FromLine(line), normalise(dialled), snapshot, policy.state, policy.live, policy.now())
    assert isinstance(d, Refuse), d
    async with write_session(ui_app.db.session_factory) as session:
        session.add(m.CallRecord(
            call_id=f"refused-{dialled}", direction=m.CallDirection.OUTGOING, calling_line_id=line.line_id,
            calling_number=caller, dialled=dialled, setup_at=datetime.now(UTC),
            final_code=d.status, cause=d.cause.value,
            decision_trail=json.dumps(list(d.trail), ensure_ascii=False),  # b2bua/manager.py's form
            support_code=load_catalogue().support_code(d.cause.value),  # what the announcement said (uas_leg.py)
        ))
    return d


async def test_a_refused_calls_trail_reads_in_norwegian_on_the_line_page_and_in_english_on_request(
    ui_app: Ui,
) -> None:
    assert await ui_app.login() == 302
    c = ui_app.client
    csrf = csrf_of(await (await c.get("/ui/customers/C1001")).text())
    resp = await c.post("/ui/customers/C1001/suspensions", data={
        "csrf": csrf, "level": "hard", "reason": "unpaid", "note": "faktura 1234", "line": ""}, allow_redirects=False)
    assert resp.status == 302
    d = await _refused_call(ui_app, "+4722000001", "91234567")
    assert d.cause.value == "suspended_unpaid"
    sid = next(s for s in d.trail if s.startswith("suspension #")).split()[1]

    html = await (await c.get("/ui/lines/+4722000001")).text()
    assert "Hvorfor gikk samtalen ikke gjennom" in html
    assert "<li>innringer: linje +4722000001, pålogget</li>" in html
    assert "<li>nummer +4791234567: mobil</li>" in html
    assert f"<li>sperring {sid} hard (ubetalt faktura, kunde): avvist</li>" in html
    assert "suspension #" not in html and "caller: line" not in html, "no English step on a Norwegian page"

    await c.get("/ui/lang/en?next=/ui/")
    html = await (await c.get("/ui/lines/+4722000001")).text()
    assert "Why did this call fail" in html
    assert f"<li>suspension {sid} hard (unpaid, customer): refused</li>" in html


async def test_min_side_explains_a_barred_call_without_the_internal_trail(ui_app: Ui) -> None:
    """Customers get the cause in words and the support code; the trail (fraud limits, suspension ids) is staff's."""
    assert await ui_app.login() == 302
    c = ui_app.client
    csrf = csrf_of(await (await c.get("/ui/lines/+4722000002")).text())
    resp = await c.post("/ui/lines/+4722000002/barring", data={"csrf": csrf, "category": "international"})
    assert resp.status in (200, 302)
    d = await _refused_call(ui_app, "+4722000002", "004681234567")
    assert d.cause.value == "barred_international", d.trail
    code = load_catalogue().support_code("barred_international")
    assert code
    # A record from before (or from a version whose words this one does not know) is shown as stored.
    async with write_session(ui_app.db.session_factory) as session:
        line_id = ui_app.policy.lines.by_number["+4722000002"].line_id  # type: ignore[union-attr]
        session.add(m.CallRecord(
            call_id="old", direction=m.CallDirection.OUTGOING, calling_line_id=line_id, calling_number="+4722000002",
            dialled="1881", setup_at=datetime(2026, 1, 1, tzinfo=UTC), final_code=403, cause="barred_by_hand",
            decision_trail=json.dumps(["caller: line +4722000002 authenticated", "legacy: barred by hand"]),
        ))

    # The operator's line page keeps the whole trail, worded, and the cause in words with its code.
    html = await (await c.get("/ui/lines/+4722000002")).text()
    assert "Hvorfor gikk samtalen ikke gjennom" in html
    assert "<li>sperretjeneste: utland sperret (linje): avvist</li>" in html
    assert "<li>misbruksvern: ok</li>" in html and "<li>legacy: barred by hand</li>" in html
    assert ('<span class="cause" title="barred_international">anrop til utlandet er sperret</span> '
            '<small class="cause-code">barred_international 403</small>') in html
    await c.post("/ui/logout", data={"csrf": csrf})

    password = await repo_users.set_customer_password(ui_app.db.session_factory, "C1001")
    assert await ui_app.login("C1001", password, path="/min-side/login") == 302
    html = await (await c.get("/min-side/calls")).text()
    assert '<span class="cause" title="barred_international">anrop til utlandet er sperret</span>' in html
    assert (f"Samtalen gikk ikke gjennom: anrop til utlandet er sperret. Oppgi kode {code} til kundeservice."
            in html), html
    assert '<span class="cause" title="barred_by_hand">barred_by_hand</span>' in html  # no words: as stored
    for internal in ("Hvorfor gikk samtalen ikke gjennom", "misbruksvern", "sperretjeneste:", "sperring: ingen",
                     "innringer:", "legacy: barred by hand", "fraud guard", "cause-code"):
        assert internal not in html, internal

    await c.get("/ui/lang/en?next=/min-side/calls")
    html = await (await c.get("/min-side/calls")).text()
    assert '<span class="cause" title="barred_international">international calls are barred</span>' in html
    assert f"The call did not go through: international calls are barred. Give code {code} to customer service." \
        in html, html
    assert "Why did this call fail" not in html and "barring: international" not in html


async def test_min_side_csv_says_the_cause_in_words_in_the_customers_language_beside_its_code(ui_app: Ui) -> None:
    """The download had only the stored code (``barred_international``); now the page's words and support code too."""
    assert await ui_app.login() == 302
    c = ui_app.client
    csrf = csrf_of(await (await c.get("/ui/lines/+4722000002")).text())
    resp = await c.post("/ui/lines/+4722000002/barring", data={"csrf": csrf, "category": "international"})
    assert resp.status in (200, 302)
    await _refused_call(ui_app, "+4722000002", "004681234567")
    code = load_catalogue().support_code("barred_international")
    assert code
    await c.post("/ui/logout", data={"csrf": csrf})
    password = await repo_users.set_customer_password(ui_app.db.session_factory, "C1001")
    assert await ui_app.login("C1001", password, path="/min-side/login") == 302

    async def rows() -> list[dict[str, str]]:
        resp = await c.get("/min-side/calls.csv")
        assert resp.status == 200 and resp.content_type == "text/csv"
        body = await resp.read()
        assert body.startswith(b"\xef\xbb\xbfline,time,")  # the UTF-8 BOM Excel needs for æøå
        return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))

    nb = [r for r in await rows() if r["dialled"] == "004681234567"]
    assert len(nb) == 1, nb
    assert (nb[0]["cause"], nb[0]["cause_text"], nb[0]["support_code"]) == (
        "barred_international", "anrop til utlandet er sperret", code)
    await c.get("/ui/lang/en?next=/min-side/calls")
    en = [r for r in await rows() if r["dialled"] == "004681234567"]
    assert (en[0]["cause"], en[0]["cause_text"]) == ("barred_international", "international calls are barred")
