"""Browser + telephone: what is set in the pages changes what the next SIPp call does.

A customer sets a forward in Min side and the next call to that line rings
the forward target (with Diversion); support suspends the customer on the
operator page and the customer's next call is refused with the suspension's
cause. Debian's Chromium driven by Playwright, a real `softswitch run` on
both databases, real SIPp callers and callees.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from playwright.async_api import Browser

from harness import LOOPBACK
from harness.ports import free_port_on
from harness.sipp import SippServer, run_sipp, write_injection_csv
from harness.softswitch import SwitchProcess
from tests.conftest import AdapterData, SwitchHome
from tests.e2e.test_calls_sipp import finals, header, requests, status_of
from tests.ui.test_browser import _customer_password, _login, _operator, _shot, browser  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e

OTHER = {"customers": [{"id": "C2002", "name": "Ola Hansen", "language": "nb", "adapters": [
    {"mac": "00:0E:08:AB:CD:02", "model": "ht802", "lines": [{"port": 1, "number": "22000003",
                                                              "password": "Tel1-secret-03"}]}]}]}


def _api(switch: SwitchProcess, token: str, method: str, path: str, body: object) -> int:
    req = urllib.request.Request(switch.http_url + path, data=json.dumps(body).encode(), method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return int(resp.status)


def _callee(switch: SwitchProcess, tmp_path: Path, number: str, password: str) -> SippServer:
    port = free_port_on(LOOPBACK)
    csv = write_injection_csv(tmp_path / f"reg{number}.csv", [(number, password)])
    r = run_sipp("uac_register_digest", switch.sip_target, inf_csv=csv, calls=1, local_port=port, timeout=10)
    assert r.ok, r.describe()
    wd = tmp_path / f"uas{number}"
    wd.mkdir()
    return SippServer("uas_answer", LOOPBACK, port, wd, timeout=40, once=True).start()


async def test_a_forward_set_in_min_side_forwards_the_next_call_and_a_suspension_refuses_the_next(
    browser: Browser, switch: SwitchProcess, switch_home: SwitchHome, imported_adapter: AdapterData,  # noqa: F811
    api_token: str, tmp_path: Path, db_backend: str,
) -> None:
    assert _api(switch, api_token, "POST", "/api/v1/imports", OTHER) == 200
    caller, forwarder = imported_adapter.lines
    target = _callee(switch, tmp_path, "22000003", "Tel1-secret-03")

    # The customer forwards line 2 to the neighbour's number in Min side.
    password = await _customer_password(switch_home.db_url, imported_adapter.customer_id)
    page = await browser.new_page(locale="nb-NO")
    await _login(page, switch.http_url, "/min-side/", imported_adapter.customer_id, password)
    await page.wait_for_url(f"{switch.http_url}/min-side/")
    form = page.locator(f'section[data-number="+47{forwarder.number}"] form[data-kind="unconditional"]')
    await form.get_by_label("Viderekoble til").fill("22000003")
    await form.get_by_role("button", name="Lagre").click()
    await page.wait_for_selector('p.notice[role="status"]')
    if db_backend == "sqlite":
        await page.screenshot(path=str(_shot("min-side-forwarding.png")), full_page=True)

    csv = write_injection_csv(tmp_path / "caller.csv", [(caller.number, caller.password)])
    r = run_sipp("uac_call_auth", switch.sip_target, inf_csv=csv, calls=1, timeout=20,
                 extra=("-set", "dialled", forwarder.number, "-d", "200"))
    assert r.ok and r.successful == 1, r.describe()
    u = target.wait()
    assert u.ok, u.describe()
    (invite,) = requests(u.received(), "INVITE")
    assert (header(invite, "Diversion") or "").startswith(f"<sip:{forwarder.number}@")

    # Support suspends the customer for an unpaid invoice; the customer's next call is refused.
    op_password = await _operator(switch_home.db_url)
    op = await browser.new_page(locale="nb-NO")
    await _login(op, switch.http_url, f"/ui/customers/{imported_adapter.customer_id}", "support1", op_password)
    await op.wait_for_url(f"{switch.http_url}/ui/customers/{imported_adapter.customer_id}")
    await op.get_by_label("Nivå").select_option("soft")
    await op.get_by_label("Grunn").select_option("unpaid")
    await op.get_by_label("Notat", exact=True).fill("faktura 4711")
    await op.get_by_role("button", name="Sperr").click()
    await op.wait_for_selector("text=faktura 4711")
    if db_backend == "sqlite":
        await op.screenshot(path=str(_shot("customer-suspended.png")), full_page=True)

    r = run_sipp("uac_invite_refused", switch.sip_target, inf_csv=csv, calls=1, timeout=20,
                 extra=("-set", "dialled", "22000003"))
    got = finals(r.received())
    assert got and {status_of(m) for m in got} == {403}, r.describe()
    assert 'text="suspended_unpaid"' in (header(got[0], "Reason") or "")
