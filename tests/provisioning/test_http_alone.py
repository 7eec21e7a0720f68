"""The HTTP side built from its own small set of parts, without the SIP side (no endpoint, no sockets
but the HTTP one), on SQLite and PostgreSQL: what ``provisioning.deps.HttpDeps`` promises.

Everything is real: the database, the importer, the line directory, the location service writing
through the raw-driver store, the lamps, an HTTP client over a loopback socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestClient, TestServer

from provisioning.app import create_app
from provisioning.deps import HttpDeps, ProvisioningConfig
from switch.app import line_directory
from switch.database import Database, derive, open_database
from switch.services.adapter_status import AdapterStatusService
from switch.services.location import LocationService
from switch.settings import Settings
from switch.store import repo_tokens
from switch.store.crypto import generate_key
from switch.store.hot_store import HotStore, make_hot_store
from switch.store.import_validation import parse_import_document
from switch.store.importer import import_document
from switch.store.models import TokenRole
from tests.conftest_db import MigratedDb

MAC = "000e08abcd01"
DOC = {"customers": [{"id": "C1001", "name": "Kari Nordmann", "adapters": [
    {"mac": "00:0E:08:AB:CD:01", "model": "spa112", "lines": [
        {"port": 1, "number": "22000001", "password": "Tel1-secret-01"},
        {"port": 2, "number": "22000002", "password": "Tel2-secret-02"}]}]}]}


@dataclass
class Alone:
    client: TestClient  # type: ignore[type-arg]
    headers: dict[str, str]


@pytest.fixture
async def alone(migrated_db: MigratedDb) -> AsyncIterator[Alone]:
    settings = Settings(database_url=migrated_db.url, key=generate_key().encode(), key_file="/nonexistent/never.key")
    db: Database = await open_database(settings)
    hot: HotStore = make_hot_store(settings.database_url)
    await hot.open()
    location = LocationService(hot.replace_bindings)
    try:
        await import_document(db.session_factory, parse_import_document(DOC), db.secret_box, "127.0.0.1")
        token, _ = await repo_tokens.create_token(db.session_factory, TokenRole.OPERATOR, label="test")
        lines = line_directory(db.session_factory, db.secret_box, "127.0.0.1")
        await lines.reload()
        status = AdapterStatusService(lines, location)
        location.start([], listeners=(status.bindings_changed,))
        deps = HttpDeps(
            session_factory=db.session_factory,
            secret_box=db.secret_box,
            config=ProvisioningConfig(nonce_secret=derive(db.key, "http-provisioning-nonce"),
                                      sip_listen=("192.0.2.1", 5060)),
            status=status,
            location=location,
            lines=lines,
        )
        client = TestClient(TestServer(create_app(deps), host="127.0.0.1"))
        await client.start_server()
        try:
            yield Alone(client, {"Authorization": f"Bearer {token}"})
        finally:
            await client.close()
    finally:
        await location.close()
        await hot.close()
        await db.close()


async def test_configs_and_lamps_are_served_without_any_sip_side(alone: Alone) -> None:
    async with alone.client.get(f"/api/v1/adapters/{MAC}/status", headers=alone.headers) as r:
        assert r.status == 200
        assert (await r.json())["pwr"]["state"] == "off"
    async with alone.client.get(f"/api/v1/adapters/{MAC}/profile-url", headers=alone.headers) as r:
        assert r.status == 200
        url = (await r.json())["profile_url"]
    path = url.split("://", 1)[1].split("/", 1)[1]
    async with alone.client.get("/" + path, headers={"User-Agent": "Cisco/SPA112-1.4.1 (000E08ABCD01)"}) as r:
        assert r.status == 200
        body = await r.text()
    # the config names the SIP proxy the composition would have given: ProvisioningConfig.sip_listen
    assert "192.0.2.1" in body and "22000001" in body
    async with alone.client.get(f"/api/v1/adapters/{MAC}/status", headers=alone.headers) as r:
        assert (await r.json())["pwr"]["state"] == "ok"  # the fetch lit PWR through the real lamp service


async def test_what_needs_the_sip_side_says_so(alone: Alone) -> None:
    async with alone.client.post(f"/api/v1/adapters/{MAC}/resync", headers=alone.headers) as r:
        assert r.status == 503
        assert "SIP side" in (await r.json())["error"]
    async with alone.client.get("/health") as r:
        assert r.status == 200 and await r.json() == {"status": "ok"}
    async with alone.client.get("/metrics", headers=alone.headers) as r:
        assert r.status == 503
    async with alone.client.get("/ui/login") as r:
        assert r.status == 404  # no UI parts given: no pages
