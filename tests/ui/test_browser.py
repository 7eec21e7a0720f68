"""The web UI in a real browser: Debian's Chromium driven by Playwright, against a real `softswitch run`.

Never a downloaded browser: ``executable_path`` is /usr/bin/chromium, which
scripts/bootstrap.sh installs from Debian. The flows are the ones support
staff and customers go through; screenshots of the main pages go to
``test-artifacts/screenshots/`` (kept by CI as artefacts; a few are in docs/).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from harness import ROOT
from harness.sipp import run_sipp, write_injection_csv
from harness.softswitch import SwitchProcess, adapter_status, poll_until
from switch.store import repo_users
from switch.store.engine import make_engine, make_session_factory, normalise_url
from tests.conftest import AdapterData, SwitchHome

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
SHOTS = ROOT / "test-artifacts" / "screenshots"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            await b.close()


async def _operator(db_url: str, username: str = "support1", role: str = "support") -> str:
    engine = make_engine(normalise_url(db_url))
    try:
        password, _ = await repo_users.create_user(make_session_factory(engine), username, role)
    finally:
        await engine.dispose()
    return password


async def _customer_password(db_url: str, ref: str) -> str:
    engine = make_engine(normalise_url(db_url))
    try:
        return await repo_users.set_customer_password(make_session_factory(engine), ref)
    finally:
        await engine.dispose()


async def _login(page: Page, base: str, path: str, username: str, password: str) -> None:
    await page.goto(f"{base}{path}")
    await page.get_by_label(re.compile("Brukernavn|Kundenummer")).fill(username)
    await page.get_by_label("Passord").fill(password)
    await page.get_by_role("button", name="Logg inn").click()


def _shot(name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS / name


async def test_operator_finds_the_adapter_and_sees_the_lamps_the_status_api_reports(
    browser: Browser, switch: SwitchProcess, switch_home: SwitchHome, imported_adapter: AdapterData,
    api_token: str, tmp_path: Path, db_backend: str,
) -> None:
    line = imported_adapter.lines[0]
    csv = write_injection_csv(tmp_path / "one.csv", [(line.number, line.password)])
    r = run_sipp("uac_register_digest", switch.sip_target, inf_csv=csv, calls=1)
    assert r.ok, r.describe()
    mac = imported_adapter.mac
    poll_until(lambda: adapter_status(switch, api_token, mac)["tel1"]["state"] == "ok", timeout=5)
    password = await _operator(switch_home.db_url)

    page = await browser.new_page(locale="nb-NO")
    await _login(page, switch.http_url, "/ui/", "support1", password)
    await page.wait_for_url(f"{switch.http_url}/ui/")
    if db_backend == "sqlite":
        await page.screenshot(path=str(_shot("dashboard.png")), full_page=True)

    # Search by MAC, as support staff type it from the sticker.
    await page.get_by_label("Søk").fill(mac.lower())
    await page.get_by_role("button", name="Søk").click()
    await page.wait_for_url(re.compile(r"/ui/adapters/000e08abcd01$"))
    seen = {
        name: await page.locator(f'.lamp[data-lamp="{name}"]').get_attribute("data-state")
        for name in ("pwr", "wan", "tel1", "tel2")
    }
    api = adapter_status(switch, api_token, mac)
    assert seen == {name: api[name]["state"] for name in seen}
    assert seen["tel1"] == "ok" and seen["tel2"] == "off"
    # The state is in words too, not only a colour.
    tel1 = page.locator('.lamp[data-lamp="tel1"]')
    assert "grønn, lyser fast" in await tel1.inner_text()
    assert api["tel1"]["reason"] in await tel1.inner_text()
    if db_backend == "sqlite":
        await page.screenshot(path=str(_shot("adapter.png")), full_page=True)
    # Resync: a NOTIFY to the registered contact (SIPp has gone, so it is not answered), said on the page.
    await page.get_by_role("button", name="Be adapteren hente oppsett nå").click()
    await page.wait_for_selector('p.notice[role="status"]')
    assert "port 1:" in await page.inner_text('p.notice[role="status"]')

    # Search by number → the line page; then to its customer, keyboard only.
    await page.get_by_label("Søk").fill("22000001")
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(r"/ui/lines/\+4722000001$"))
    await page.get_by_role("link", name=imported_adapter.customer_id).first.click()
    await page.wait_for_url(re.compile(f"/ui/customers/{imported_adapter.customer_id}$"))
    assert "Kari Nordmann" in await page.inner_text("h1")
    if db_backend == "sqlite":
        await page.screenshot(path=str(_shot("customer.png")), full_page=True)


async def test_forged_form_is_refused_and_a_customer_cannot_open_another_customers_line(
    browser: Browser, switch: SwitchProcess, switch_home: SwitchHome, imported_adapter: AdapterData,
    db_backend: str,
) -> None:
    password = await _operator(switch_home.db_url)
    page = await browser.new_page(locale="nb-NO")
    await _login(page, switch.http_url, "/ui/", "support1", password)
    await page.wait_for_url(f"{switch.http_url}/ui/")
    # A form posted without the session's CSRF token (what a cross-site page would send).
    status = await page.evaluate(
        """async () => (await fetch('/ui/logout', {method: 'POST', body: new URLSearchParams({csrf: 'forged'})})).status"""
    )
    assert status == 403
    await page.goto(f"{switch.http_url}/ui/")
    assert page.url.endswith("/ui/"), "still logged in: the forged logout did nothing"

    # Min side: the customer's own lines, and nothing of anyone else's.
    cust = await _customer_password(switch_home.db_url, imported_adapter.customer_id)
    mp = await browser.new_page(locale="nb-NO")
    await _login(mp, switch.http_url, "/min-side/", imported_adapter.customer_id, cust)
    await mp.wait_for_url(f"{switch.http_url}/min-side/")
    text = await mp.inner_text("main")
    assert "+4722000001" in text and "+4722000002" in text
    if db_backend == "sqlite":
        await mp.set_viewport_size({"width": 390, "height": 844})
        await mp.screenshot(path=str(_shot("min-side-mobile.png")), full_page=True)
    csrf = await mp.locator('input[name="csrf"]').first.get_attribute("value")
    status = await mp.evaluate(
        """async (csrf) => (await fetch('/min-side/lines/+4799999999/barring',
               {method: 'POST', body: new URLSearchParams({csrf, category: 'international'})})).status""",
        csrf,
    )
    assert status == 404
    resp = await mp.goto(f"{switch.http_url}/ui/customers/{imported_adapter.customer_id}")
    assert resp is not None and "/ui/login" in mp.url, "a customer session does not open operator pages"
