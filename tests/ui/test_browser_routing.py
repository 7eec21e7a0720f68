"""Browser + carrier: a trunk and a route added on the admin page are what the API shows and what the next
call uses.

Debian's Chromium driven by Playwright against a real `softswitch run` (both databases); the carrier is a
SIPp UAS on 127.0.0.3 (it also answers the trunk liveness OPTIONS); the caller a SIPp UAC with digest.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser

from harness.ports import free_port_on
from harness.sipp import SippServer, requests
from harness.softswitch import SwitchProcess
from tests.conftest import AdapterData, SwitchHome
from tests.e2e.test_calls_sipp import CARRIER_OK_IP, brief, call, cdr_rows
from tests.ui.test_browser import _login, _operator, _shot, browser  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e


def _get(switch: SwitchProcess, token: str, path: str) -> Any:
    req = urllib.request.Request(switch.http_url + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


async def test_admin_adds_a_trunk_and_a_route_in_the_page_and_the_next_call_takes_them(
    browser: Browser, switch: SwitchProcess, switch_home: SwitchHome, imported_adapter: AdapterData,  # noqa: F811
    api_token: str, tmp_path: Path, db_backend: str,
) -> None:
    port = free_port_on(CARRIER_OK_IP)
    (tmp_path / "carrier").mkdir()
    carrier = SippServer("uas_answer", CARRIER_OK_IP, port, tmp_path / "carrier", timeout=60, once=True).start()
    try:
        password = await _operator(switch_home.db_url, "admin1", "admin")
        page = await browser.new_page(locale="nb-NO")
        await _login(page, switch.http_url, "/ui/admin/trunks", "admin1", password)
        await page.wait_for_url(f"{switch.http_url}/ui/admin/trunks")

        # A trunk, every field found by its label.
        await page.get_by_label("Navn", exact=True).fill("carrierUi")
        await page.get_by_label("Vert", exact=True).fill(CARRIER_OK_IP)
        await page.get_by_label("Port", exact=True).fill(str(port))
        await page.get_by_label("Transport", exact=True).select_option("udp")
        await page.get_by_label("Brukernavn hos operatøren (valgfritt)").fill("acct1")
        await page.get_by_label("Passord hos operatøren (valgfritt)").fill("t-secret")
        await page.get_by_label("Tillatte avsendere", exact=False).fill(f"{CARRIER_OK_IP}/32")
        await page.get_by_role("button", name="Opprett").click()
        await page.wait_for_selector('p.notice[role="status"]')
        assert "Trunken carrierUi er opprettet." in await page.inner_text('p.notice[role="status"]')

        # A refused route says why next to the field, in Norwegian, and changes nothing.
        await page.get_by_label("Prefiks", exact=True).fill("46")
        await page.get_by_role("button", name="Lagre").click()
        await page.wait_for_selector('[data-field="prefix"]')
        assert "Må være «+» fulgt av opptil 15 sifre." in await page.inner_text('[data-field="prefix"]')

        # The route, keyboard only: the prefix, Tab to the first choice, arrow to the trunk, Enter to save.
        await page.get_by_label("Prefiks", exact=True).fill("+46")
        await page.keyboard.press("Tab")
        await page.keyboard.press("ArrowDown")
        assert await page.get_by_label("Valg 1").input_value() == "carrierUi"
        await page.get_by_label("Beskrivelse").focus()
        await page.keyboard.type("Sverige")
        await page.keyboard.press("Enter")
        await page.wait_for_selector('tr[data-prefix="+46"]')
        assert "carrierUi" in await page.inner_text('tr[data-prefix="+46"]')
        if db_backend == "sqlite":
            await page.screenshot(path=str(_shot("admin-trunks.png")), full_page=True)

        # The API shows what the page stored ...
        route = _get(switch, api_token, "/api/v1/routes/+46")
        assert route == {"prefix": "+46", "trunks": ["carrierUi"], "enabled": True, "description": "Sverige"}
        trunk = _get(switch, api_token, "/api/v1/trunks/carrierUi")
        assert (trunk["host"], trunk["port"], trunk["has_password"], trunk["routes"]) == (CARRIER_OK_IP, port, True,
                                                                                        ["+46"])
        # ... and the running switch routes the next call by it, without a restart.
        r = call(switch, tmp_path, "uac_call_auth", "+4681234567", "-d", "200")
        assert r.ok and (r.successful, r.failed) == (1, 0), r.describe()
        c = carrier.wait()
        assert c.ok, c.describe()
        (invite,) = requests(c.received(), "INVITE")
        assert invite.startswith(f"INVITE sip:+4681234567@{CARRIER_OK_IP}:{port} SIP/2.0"), invite.splitlines()[0]
        (cdr,) = await asyncio.to_thread(cdr_rows, switch_home.db_url, 1)  # it runs its own event loop
        assert brief(cdr)[4:] == ("carrierUi", 200, "normal") and cdr["route_prefix"] == "+46"
    finally:
        if carrier.proc is not None and carrier.running():
            carrier.stop()
