"""Fixtures for the web pages: the real HTTP app (UI routes) over a real database.

``ui_client`` serves the pages in-process with aiohttp's test server, on
SQLite and PostgreSQL, with one customer, adapter and two lines imported by
the real importer, and lamps from the real ``Lamp`` type; the browser tests
(tests/ui/test_browser.py) run a whole ``softswitch run`` instead.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from provisioning import ui
from provisioning.ui.deps import BindingView
from switch.services.adapter_status import Lamp
from switch.services.lines import LineDirectory, LineInfo
from switch.services.policy.service import PolicyService
from switch.services.rating.service import RatingService
from switch.services.trunks import TrunkService
from switch.store.repo_lines import load_credentials
from switch.store.repo_trunks import RouteRecord, TrunkRecord, load_routing
from switch.store import importer, repo_users
from switch.store.crypto import SecretBox, generate_key
from tests.conftest_db import MigratedDb

DOC = {
    "customers": [
        {
            "id": "C1001", "name": "Kari Nordmann", "language": "nb",
            "adapters": [{"mac": "00:0E:08:AB:CD:01", "model": "spa112", "lines": [
                {"port": 1, "number": "22000001", "password": "Tel1-secret-01"},
                {"port": 2, "number": "22000002", "password": "Tel2-secret-02"},
            ]}],
        },
        {
            "id": "C2002", "name": "Ola Hansen", "language": "en",
            "adapters": [{"mac": "00:0E:08:AB:CD:02", "model": "ht802", "lines": [
                {"port": 1, "number": "22000003", "password": "Tel1-secret-03"},
            ]}],
        },
    ]
}


@dataclass
class Ui:
    client: TestClient[web.Request, web.Application]
    db: MigratedDb
    admin_password: str
    lamps: dict[int, dict[str, Lamp]] = field(default_factory=dict)
    policy: PolicyService | None = None
    trunks: TrunkService | None = None

    async def login(self, username: str = "admin", password: str | None = None, path: str = "/ui/login") -> int:
        page = await self.client.get(path)
        csrf = csrf_of(await page.text())
        resp = await self.client.post(path, data={"csrf": csrf, "username": username,
                                                  "password": password or self.admin_password},
                                      allow_redirects=False)
        return resp.status


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the form carries a CSRF token"
    return found.group(1)


@pytest.fixture
async def ui_app(migrated_db: MigratedDb) -> AsyncIterator[Ui]:
    sf = migrated_db.session_factory
    box = SecretBox(generate_key())
    doc = importer.parse_import_document(DOC)
    await importer.import_document(sf, doc, box, "127.0.0.1")
    password, _ = await repo_users.create_user(sf, "admin", "admin")
    await repo_users.create_user(sf, "reader", "readonly", password="reader-password-1")
    lamps: dict[int, dict[str, Lamp]] = {}
    now = time.time()

    def lamps_of(adapter_id: int) -> dict[str, Lamp]:
        return lamps.get(adapter_id, {
            "pwr": Lamp("ok", "last config fetch 1 min ago", now - 60),
            "wan": Lamp("warning", "no answer to 3 pings since 12:03", now - 120),
            "tel1": Lamp("ok", "registered from 192.0.2.7:5060 (udp)", now - 300),
            "tel2": Lamp("off", "wrong password", now - 30),
        })

    def bindings(line_id: int) -> list[BindingView]:
        return [BindingView("sip:22000001@192.0.2.7:5060", "192.0.2.7:5060", "udp", 3000, "Cisco/SPA112")] if line_id == 1 else []

    async def load() -> list[LineInfo]:
        creds = await load_credentials(sf, "127.0.0.1", secret_box=box)
        return [LineInfo(c.line_id, c.auth_user, c.number, c.ha1_md5, c.ha1_sha256, c.adapter_id, c.port)
                for c in creds.values()]

    lines = LineDirectory(load)
    await lines.reload()
    policy = PolicyService(sf, lines, reload_interval=0)  # the real one: the pages change what calls see
    await policy.load()

    async def routing() -> tuple[list[TrunkRecord], list[RouteRecord]]:
        return await load_routing(sf, box)

    trunks = TrunkService(routing)  # the real routing table the calls use: the admin page reloads it
    await trunks.reload()
    rating = await RatingService.open(sf, credit=False)  # the real tariffs, for the price look-up page
    app = web.Application()
    ui.setup(app, ui.UiDeps(session_factory=sf, lamps=lamps_of, bindings=bindings, registered_lines=lambda: 1,
                            policy=policy, rating=rating, secret_box=box, realm="127.0.0.1",
                            after_change=lines.reload, routing_reload=trunks.reload))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Ui(client, migrated_db, password, lamps, policy, trunks)
    finally:
        await client.close()
        await policy.close()
        await rating.close()
