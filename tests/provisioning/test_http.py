"""Adapter-facing provisioning over real HTTP, in process, on SQLite and PostgreSQL.

The switch's services are the real ones (``switch.app.start``: database, SIP endpoint on a
loopback port, registrar, lamps); the aiohttp app is served on a loopback socket and spoken
to with a real HTTP client. What is checked is what an attacker or a misconfigured adapter
would try: no credentials, another adapter's credentials (both ways: A's token with B's file
name, A's digest credentials with B's MAC), unknown MACs, guessing until throttled -- and what
an operator relies on: fetch records, the PWR lamp, change detection, the unclaimed list,
profile URLs and the SIP resync.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from provisioning import ata
from provisioning.app import create_app
from switch import app as switch_app
from switch.app import Switch
from switch.settings import Settings
from switch.sip import digest
from switch.sip.message import Request, Response
from switch.sip.parser import parse_message
from switch.store import repo_adapters, repo_lines, repo_tokens
from switch.store.adapter_models import parse_user_agent
from switch.store.crypto import generate_key
from switch.store.import_validation import parse_import_document
from switch.store.importer import import_document
from switch.store.models import TokenRole
from tests.conftest_db import MigratedDb
from harness.ports import free_port

SPA_MAC = "000e08abcd01"
GS_MAC = "c074adabcd02"
OTHER_MAC = "000e08ffff99"  # not in the database
PASSWORDS = {"22000001": "Tel1-secret-01", "22000002": "Tel2-secret-02",
             "22000003": "Tel3-secret-03", "22000004": "Tel4-secret-04"}
SPA_UA = "Cisco/SPA112-1.4.1(SR5) (000E08ABCD01)(CCQ1234ABCD)"
GS_UA = "Grandstream Model HW HT802 V2.1A SW 1.0.17.5 DevId c074adabcd02"

DOC = {
    "customers": [
        {"id": "C1001", "name": "Kari Nordmann", "language": "nb", "adapters": [
            {"mac": "00:0E:08:AB:CD:01", "model": "spa112", "lines": [
                {"port": 1, "number": "22000001", "password": PASSWORDS["22000001"]},
                {"port": 2, "number": "22000002", "password": PASSWORDS["22000002"]}]}]},
        {"id": "C1002", "name": "Ola Nordmann", "language": "nb", "adapters": [
            {"mac": "C0:74:AD:AB:CD:02", "model": "ht802", "lines": [
                {"port": 1, "number": "22000003", "password": PASSWORDS["22000003"]},
                {"port": 2, "number": "22000004", "password": PASSWORDS["22000004"]}]}]},
    ]
}


@dataclass
class Prov:
    client: TestClient  # type: ignore[type-arg]
    services: Switch
    token: str
    app: Any

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def api(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.client.request(method, path, headers=self.auth, **kw) as r:
            return r.status, await r.json()

    async def profile(self, mac: str) -> dict[str, Any]:
        status, body = await self.api("GET", f"/api/v1/adapters/{mac}/profile-url")
        assert status == 200, body
        return body  # type: ignore[no-any-return]


@pytest.fixture
async def prov(migrated_db: MigratedDb) -> AsyncIterator[Prov]:
    key = generate_key()
    settings = Settings(
        sip_listen=[("127.0.0.1", free_port("both"))],
        http_listen=("127.0.0.1", 0),
        database_url=migrated_db.url,
        key=key.encode(),
        qualify_interval=0.0,
        key_file="/nonexistent/never-read.key",
    )
    services = await switch_app.start(settings)
    try:
        await import_document(services.session_factory, parse_import_document(DOC), services.secret_box,
                              settings.effective_realm())
        await services.lines.reload()
        token, _ = await repo_tokens.create_token(services.session_factory, TokenRole.OPERATOR, label="test")
        app = create_app(services.http)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        try:
            yield Prov(client=client, services=services, token=token, app=app)
        finally:
            await client.close()
    finally:
        await switch_app.stop(services)


async def _get(prov: Prov, path: str, *, ua: str | None = None, **headers: str) -> tuple[ClientResponse, bytes]:
    h = dict(headers)
    if ua is not None:
        h["User-Agent"] = ua
    async with prov.client.get(path, headers=h) as r:
        return r, await r.read()


async def _digest_get(prov: Prov, path: str, user: str, password: str, *, ua: str | None = None
                      ) -> tuple[ClientResponse, bytes]:
    """A GET that answers the server's Digest challenge like an adapter does."""
    first, _ = await _get(prov, path, ua=ua)
    assert first.status == 401, first.status
    values = first.headers.getall("WWW-Authenticate")
    challenge = digest.choose_challenge([c for v in values for c in digest.parse_challenges(v)])
    authorization = digest.DigestClient(user, password).authorize(challenge, "GET", path)
    return await _get(prov, path, ua=ua, Authorization=authorization)


def _secrets_of(profile: dict[str, Any]) -> list[str]:
    token = profile["profile_url"].split("/cfg/", 1)[1].split("/", 1)[0]
    return [token, profile["digest"]["password"], *PASSWORDS.values()]


def _token_path(profile: dict[str, Any]) -> str:
    return "/cfg/" + str(profile["profile_url"]).split("/cfg/", 1)[1]


def _spa_params(body: bytes) -> dict[str, str]:
    root = ET.fromstring(body)
    assert root.tag == "flat-profile"
    return {el.tag: (el.text or "") for el in root.iter() if el is not root}


def _gs_params(body: bytes) -> dict[str, str]:
    root = ET.fromstring(body)
    assert root.tag == "gs_provision"
    return {el.tag: (el.text or "") for el in root.iter() if el.tag.startswith("P")}


# --------------------------------------------------------------------------- bootstrap


@pytest.mark.parametrize("name,model_root", [
    ("spa112.cfg", "flat-profile"), ("spa122.cfg", "flat-profile"), ("spa2102.cfg", "flat-profile"),
    ("init.cfg", "flat-profile"), ("cfg.xml", "gs_provision"), ("cfght802.xml", "gs_provision"),
    ("cfght812.xml", "gs_provision"),
])
async def test_bootstrap_files_point_at_cfg_and_carry_no_secret(prov: Prov, name: str, model_root: str) -> None:
    r, body = await _get(prov, "/" + name)
    assert r.status == 200
    assert r.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert int(r.headers["Content-Length"]) == len(body)
    root = ET.fromstring(body)
    assert root.tag == model_root
    origin = f"http://127.0.0.1:{prov.client.port}"
    if model_root == "flat-profile":
        params = _spa_params(body)
        assert params["Profile_Rule"] == f"{origin}/cfg/spa$MA.xml"
        assert params["Profile_Rule_B"] == f"{origin}/cfg/spa$MA.xml"
    else:
        params = _gs_params(body)
        assert (params["P212"], params["P237"]) == ("1", f"127.0.0.1:{prov.client.port}/cfg")
    text = body.decode()
    for mac in (SPA_MAC, GS_MAC):
        for secret in _secrets_of(await prov.profile(mac)):
            assert secret not in text
    assert "--pwd" not in text and "P1361" not in text


async def test_grandstream_first_request_names_the_adapter(prov: Prov) -> None:
    r, body = await _get(prov, f"/cfg{GS_MAC}.xml", ua=GS_UA)
    assert r.status == 200
    root = ET.fromstring(body)
    assert root.findtext("mac") == GS_MAC
    assert _gs_params(body)["P237"] == f"127.0.0.1:{prov.client.port}/cfg"
    for secret in _secrets_of(await prov.profile(GS_MAC)):
        assert secret not in body.decode()
    # Its binary config is never served, and asking for it is no failure and no unclaimed entry.
    for name in (f"/cfg{GS_MAC}", f"/cfg{GS_MAC}.bin", f"/cfg{OTHER_MAC}"):
        r, _ = await _get(prov, name, ua=GS_UA)
        assert r.status == 404
    status, body_json = await prov.api("GET", "/api/v1/unclaimed-adapters")
    assert (status, body_json) == (200, {"unclaimed": []})


# --------------------------------------------------------------------------- authenticated fetch


async def test_token_url_serves_config_records_fetch_and_lights_pwr(prov: Prov) -> None:
    profile = await prov.profile(SPA_MAC)
    path = _token_path(profile)
    assert re.fullmatch(r"/cfg/[A-Za-z0-9_-]{32}/spa000e08abcd01\.xml", path)  # 32 x 6 = 192-bit token
    status, before = await prov.api("GET", f"/api/v1/adapters/{SPA_MAC}/status")
    assert before["pwr"]["state"] == "off"
    assert before["config"]["changed_since_last_fetch"] is None

    r, body = await _get(prov, path, ua=SPA_UA)
    assert r.status == 200, body
    assert r.headers["Cache-Control"] == "no-store"
    assert int(r.headers["Content-Length"]) == len(body)
    params = _spa_params(body)
    assert (params["User_ID_1_"], params["Password_1_"]) == ("4722000001", PASSWORDS["22000001"])
    assert (params["User_ID_2_"], params["Password_2_"]) == ("4722000002", PASSWORDS["22000002"])
    assert (params["Auth_ID_1_"], params["Auth_ID_2_"]) == ("22000001", "22000002")
    # The config keeps the adapter on its own authenticated URL.
    assert params["Profile_Rule"] == profile["profile_url"]
    sip_port = prov.services.settings.sip_listen[0][1]
    assert params["Outbound_Proxy_1_"] == f"127.0.0.1:{sip_port}"

    adapter = await repo_adapters.get_adapter_by_mac(prov.services.session_factory, SPA_MAC)
    assert adapter is not None and adapter.firmware_seen == "1.4.1(SR5)"
    fetches = await repo_adapters.list_config_fetches(prov.services.session_factory, adapter.adapter_id)
    assert len(fetches) == 1
    assert fetches[0].config_hash == hashlib.sha256(body).hexdigest()
    assert (fetches[0].remote_addr, fetches[0].user_agent) == ("127.0.0.1", SPA_UA)

    status, after = await prov.api("GET", f"/api/v1/adapters/{SPA_MAC}/status")
    assert status == 200
    assert after["pwr"]["state"] == "ok"
    assert after["firmware"] == "1.4.1(SR5)"
    assert after["config"]["changed_since_last_fetch"] is False
    assert after["config"]["last_fetch"]["config_hash"] == hashlib.sha256(body).hexdigest()
    assert after["config"]["last_fetch"]["remote_addr"] == "127.0.0.1"

    status, hist = await prov.api("GET", f"/api/v1/adapters/{SPA_MAC}/config-fetches")
    assert status == 200
    assert [f["config_hash"] for f in hist["fetches"]] == [hashlib.sha256(body).hexdigest()]
    assert hist["fetches"][0]["user_agent"] == SPA_UA


async def test_config_change_is_reported_until_the_next_fetch(prov: Prov) -> None:
    profile = await prov.profile(SPA_MAC)
    r, _ = await _get(prov, _token_path(profile), ua=SPA_UA)
    assert r.status == 200
    sf, box = prov.services.session_factory, prov.services.secret_box
    line = await repo_lines.get_line_by_auth_user(sf, "22000002")
    assert line is not None
    await repo_lines.set_line_secret(sf, line.line_id, "Changed-secret-9", box,
                                     prov.services.settings.effective_realm())
    _, status = await prov.api("GET", f"/api/v1/adapters/{SPA_MAC}/status")
    assert status["config"]["changed_since_last_fetch"] is True
    r, body = await _get(prov, _token_path(profile), ua=SPA_UA)
    assert _spa_params(body)["Password_2_"] == "Changed-secret-9"
    _, status = await prov.api("GET", f"/api/v1/adapters/{SPA_MAC}/status")
    assert status["config"]["changed_since_last_fetch"] is False


async def test_digest_url_needs_the_adapters_own_credentials(prov: Prov) -> None:
    profile = await prov.profile(GS_MAC)
    d = profile["digest"]
    path = f"/cfg/cfg{GS_MAC}.xml"
    assert d["url"].endswith(path) and d["username"] == GS_MAC
    r, _ = await _get(prov, path, ua=GS_UA)
    assert r.status == 401
    algorithms = [digest.parse_challenge(v).algorithm for v in r.headers.getall("WWW-Authenticate")]
    assert algorithms == ["SHA-256", "MD5"]
    r, body = await _digest_get(prov, path, d["username"], d["password"], ua=GS_UA)
    assert r.status == 200
    params = _gs_params(body)
    assert (params["P35"], params["P36"], params["P34"]) == ("4722000003", "22000003", PASSWORDS["22000003"])
    assert (params["P735"], params["P736"], params["P734"]) == ("4722000004", "22000004", PASSWORDS["22000004"])
    # After this fetch the adapter uses its token URL.
    assert params["P237"] == profile["staging"]["token"]["P237"]
    r, _ = await _digest_get(prov, path, d["username"], d["password"] + "x", ua=GS_UA)
    assert r.status == 401


async def test_replayed_digest_is_refused(prov: Prov) -> None:
    d = (await prov.profile(GS_MAC))["digest"]
    path = f"/cfg/cfg{GS_MAC}.xml"
    first, _ = await _get(prov, path)
    challenge = digest.parse_challenge(first.headers.getall("WWW-Authenticate")[0])
    authorization = digest.DigestClient(d["username"], d["password"]).authorize(challenge, "GET", path)
    r, _ = await _get(prov, path, Authorization=authorization)
    assert r.status == 200
    r, _ = await _get(prov, path, Authorization=authorization)  # same nonce, cnonce and nc
    assert r.status == 401
    # A digest computed for another file does not open this one.
    other = digest.DigestClient(d["username"], d["password"]).authorize(challenge, "GET", "/cfg/x.xml")
    r, _ = await _get(prov, path, Authorization=other)
    assert r.status == 401


async def test_no_url_without_credentials_serves_a_config(prov: Prov) -> None:
    """The bootstrap names are the only unauthenticated URLs, and they hold no secret."""
    forms = [
        f"/cfg/spa{SPA_MAC}.xml", f"/cfg/{SPA_MAC}.xml", f"/spa{SPA_MAC}.xml", f"/{SPA_MAC}.xml",
        f"/cfg/cfg{GS_MAC}.xml", f"/cfg{GS_MAC}.xml", f"/cfg/obi{GS_MAC}.xml", f"/cfg/spa{SPA_MAC}.xml?mac={SPA_MAC}",
        f"/cfg//spa{SPA_MAC}.xml", f"/cfg/x/../spa{SPA_MAC}.xml", "/cfg/", "/cfg",
    ]
    for path in forms:
        r, body = await _get(prov, path, ua=SPA_UA if SPA_MAC in path else GS_UA)
        assert r.status in (200, 401, 404), (path, r.status)
        assert not any(p.encode() in body for p in PASSWORDS.values()), path
        if r.status == 200:
            assert path == f"/cfg{GS_MAC}.xml"  # Grandstream's first request: the bootstrap


# --------------------------------------------------------------------------- cross-adapter


async def test_one_adapters_token_never_opens_another_adapters_config(prov: Prov) -> None:
    spa, gs = await prov.profile(SPA_MAC), await prov.profile(GS_MAC)
    spa_token = _token_path(spa).split("/")[2]
    gs_token = _token_path(gs).split("/")[2]
    # A's token with B's file name, both ways round.
    r, body = await _get(prov, f"/cfg/{spa_token}/cfg{GS_MAC}.xml")
    assert r.status == 403
    r, body2 = await _get(prov, f"/cfg/{gs_token}/spa{SPA_MAC}.xml")
    assert r.status == 403
    for b in (body, body2):
        assert not any(s.encode() in b for s in PASSWORDS.values())
    # Own token, other spellings of its own MAC: fine ($MAU upper case, "$MA.xml").
    r, _ = await _get(prov, f"/cfg/{spa_token}/spa{SPA_MAC.upper()}.xml")
    assert r.status == 200
    r, _ = await _get(prov, f"/cfg/{spa_token}/{SPA_MAC}.xml")
    assert r.status == 200


async def test_one_adapters_digest_credentials_never_open_another_adapters_config(prov: Prov) -> None:
    spa, gs = (await prov.profile(SPA_MAC))["digest"], (await prov.profile(GS_MAC))["digest"]
    # A's credentials (username = A's MAC) with B's MAC in the URL, both ways round.
    r, body = await _digest_get(prov, f"/cfg/cfg{GS_MAC}.xml", spa["username"], spa["password"])
    assert r.status == 401
    r, body2 = await _digest_get(prov, f"/cfg/spa{SPA_MAC}.xml", gs["username"], gs["password"])
    assert r.status == 401
    # B's MAC as username with A's password.
    r, body3 = await _digest_get(prov, f"/cfg/cfg{GS_MAC}.xml", GS_MAC, spa["password"])
    assert r.status == 401
    for b in (body, body2, body3):
        assert not any(s.encode() in b for s in PASSWORDS.values())


async def test_user_agent_naming_another_mac_is_refused(prov: Prov) -> None:
    spa = await prov.profile(SPA_MAC)
    other_ua = "Cisco/SPA112-1.4.1(SR5) (000E08ABCD99)(CCQ1234ABCD)"
    r, _ = await _get(prov, _token_path(spa), ua=other_ua)
    assert r.status == 403
    assert parse_user_agent(other_ua) is not None


# --------------------------------------------------------------------------- unknown MACs


async def test_unknown_mac_is_404_and_can_be_assigned(prov: Prov) -> None:
    ua = "Cisco/SPA122-1.4.1(SR5) (000E08FFFF99)(CCQ99)"
    r, _ = await _get(prov, f"/cfg/spa{OTHER_MAC}.xml", ua=ua)
    assert r.status == 404
    r, _ = await _get(prov, f"/cfg/{'A' * 32}/spa{OTHER_MAC}.xml", ua=ua)
    assert r.status == 404
    status, body = await prov.api("GET", "/api/v1/unclaimed-adapters")
    assert status == 200
    [entry] = body["unclaimed"]
    assert (entry["mac"], entry["last_addr"], entry["user_agent"], entry["model_hint"], entry["fetch_count"]) == (
        "00:0e:08:ff:ff:99", "127.0.0.1", ua, "spa122", 2)

    status, body = await prov.api("POST", f"/api/v1/unclaimed-adapters/{OTHER_MAC}/assign", json={"customer": "nobody"})
    assert status == 404
    status, body = await prov.api("POST", f"/api/v1/unclaimed-adapters/{OTHER_MAC}/assign", json={"customer": "C1001"})
    assert status == 201, body
    assert (body["mac"], body["model"], body["customer"]) == ("00:0e:08:ff:ff:99", "spa122", "C1001")
    status, body = await prov.api("GET", "/api/v1/unclaimed-adapters")
    assert body == {"unclaimed": []}
    status, body = await prov.api("POST", f"/api/v1/unclaimed-adapters/{OTHER_MAC}/assign", json={"customer": "C1001"})
    assert status == 404  # no longer unclaimed

    # Now it is an adapter (without lines yet): its own URL works, both ports switched off.
    profile = await prov.profile(OTHER_MAC)
    r, cfg = await _get(prov, _token_path(profile), ua=ua)
    assert r.status == 200
    params = _spa_params(cfg)
    assert (params["Line_Enable_1_"], params["Line_Enable_2_"]) == ("No", "No")


# --------------------------------------------------------------------------- throttling


async def test_mac_guessing_is_throttled_and_logged(prov: Prov, caplog: pytest.LogCaptureFixture) -> None:
    spa = await prov.profile(SPA_MAC)
    r, _ = await _get(prov, _token_path(spa))  # the real adapter, behind the same address
    assert r.status == 200
    caplog.set_level(logging.WARNING, logger="provisioning.ata")
    # Freeze the throttle's clock: the failure count leaks away in real time otherwise.
    now = prov.app[ata.ATA_STATE].clock()
    prov.app[ata.ATA_STATE].clock = lambda: now
    threshold = int(ata.THROTTLE_POLICY.source_threshold)
    statuses = []
    for i in range(threshold + 3):
        r, _ = await _get(prov, f"/cfg/spa000e08{i:06x}.xml")
        statuses.append(r.status)
    assert statuses == [404] * threshold + [429] * 3
    r, _ = await _get(prov, f"/cfg/spa000e08{0xabcdef:06x}.xml")
    assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
    # Blocked callers learn nothing: a known MAC answers the same 429 ...
    r, _ = await _get(prov, f"/cfg/cfg{GS_MAC}.xml")
    assert r.status == 429
    # ... but the adapter that authenticated from this address keeps working (NAT).
    r, _ = await _get(prov, _token_path(spa))
    assert r.status == 200
    guesses = [rec.getMessage() for rec in caplog.records if "unknown MAC" in rec.getMessage()]
    assert len(guesses) == threshold
    assert all("from 127.0.0.1:" in g for g in guesses)
    assert any("blocking 127.0.0.1" in rec.getMessage() for rec in caplog.records)
    # Only the guesses that got through were recorded as unclaimed.
    _, body = await prov.api("GET", "/api/v1/unclaimed-adapters")
    assert len(body["unclaimed"]) == threshold


async def test_wrong_tokens_are_throttled_per_mac(prov: Prov) -> None:
    now = prov.app[ata.ATA_STATE].clock()
    prov.app[ata.ATA_STATE].clock = lambda: now
    pair = int(ata.THROTTLE_POLICY.pair_threshold)
    statuses = []
    for i in range(pair + 1):
        r, _ = await _get(prov, f"/cfg/{'B' * 31}{i % 10}/cfg{GS_MAC}.xml")
        statuses.append(r.status)
    assert statuses == [403] * pair + [429]
    # The right token is not even checked while the pair is blocked.
    gs = await prov.profile(GS_MAC)
    r, _ = await _get(prov, _token_path(gs))
    assert r.status == 429


# --------------------------------------------------------------------------- operator API


async def test_operator_api_needs_an_operator_token(prov: Prov) -> None:
    for method, path in [
        ("GET", "/api/v1/unclaimed-adapters"),
        ("POST", f"/api/v1/unclaimed-adapters/{OTHER_MAC}/assign"),
        ("GET", f"/api/v1/adapters/{SPA_MAC}/profile-url"),
        ("GET", f"/api/v1/adapters/{SPA_MAC}/config-fetches"),
        ("POST", f"/api/v1/adapters/{SPA_MAC}/resync"),
    ]:
        async with prov.client.request(method, path) as r:
            assert r.status == 401, path
            body = await r.text()
            assert "secret" not in body and "profile_url" not in body


async def test_profile_url_staging_values(prov: Prov) -> None:
    origin = f"http://127.0.0.1:{prov.client.port}"
    gs = await prov.profile(GS_MAC)
    token = _token_path(gs).split("/")[2]
    assert gs["staging"]["token"] == {"P212": "1", "P237": f"127.0.0.1:{prov.client.port}/cfg/{token}"}
    assert gs["staging"]["digest"]["P1360"] == GS_MAC
    spa = await prov.profile(SPA_MAC)
    assert spa["staging"]["token"] == {"Profile_Rule": spa["profile_url"]}
    assert spa["bootstrap_urls"] == [f"{origin}/spa112.cfg"]
    status, body = await prov.api("GET", f"/api/v1/adapters/{SPA_MAC}/profile-url?origin=https://prov.example.net")
    assert body["profile_url"].startswith("https://prov.example.net/cfg/")
    status, body = await prov.api("GET", f"/api/v1/adapters/{SPA_MAC}/profile-url?origin=https://x/y")
    assert status == 400
    status, body = await prov.api("GET", f"/api/v1/adapters/{OTHER_MAC}/profile-url")
    assert status == 404


# --------------------------------------------------------------------------- resync


class SipPhone:
    """Just enough of an adapter's SIP stack: REGISTER with digest, answer one NOTIFY."""

    def __init__(self, sip_port: int) -> None:
        self.sip_port = sip_port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.loop = asyncio.get_running_loop()

    def close(self) -> None:
        self.sock.close()

    async def send(self, data: bytes) -> None:
        await self.loop.sock_sendto(self.sock, data, ("127.0.0.1", self.sip_port))

    async def recv(self, timeout: float = 3.0) -> Request | Response:
        data, _ = await asyncio.wait_for(self.loop.sock_recvfrom(self.sock, 65535), timeout)
        msg = parse_message(data)
        assert isinstance(msg, (Request, Response))
        return msg

    def _register(self, user: str, cseq: int, authorization: str | None) -> bytes:
        lines = [
            f"REGISTER sip:127.0.0.1:{self.sip_port} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{user}{cseq};rport",
            "Max-Forwards: 70",
            f"From: <sip:{user}@127.0.0.1>;tag=t{user}",
            f"To: <sip:{user}@127.0.0.1>",
            f"Call-ID: reg-{user}-{self.port}",
            f"CSeq: {cseq} REGISTER",
            f"Contact: <sip:{user}@127.0.0.1:{self.port}>",
            "Expires: 600",
        ]
        if authorization:
            lines.append(f"Authorization: {authorization}")
        return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()

    async def register(self, user: str, password: str) -> None:
        await self.send(self._register(user, 1, None))
        resp = await self._final()
        assert resp.status == 401
        challenge = digest.choose_challenge(
            [c for v in resp.headers.get_lines("WWW-Authenticate") for c in digest.parse_challenges(v)])
        auth = digest.DigestClient(user, password).authorize(challenge, "REGISTER", f"sip:127.0.0.1:{self.sip_port}")
        await self.send(self._register(user, 2, auth))
        resp = await self._final()
        assert resp.status == 200

    async def _final(self) -> Response:
        while True:
            msg = await self.recv()
            if isinstance(msg, Response) and msg.status >= 200:
                return msg

    async def answer(self, req: Request, status: int, extra: list[str] = ()) -> None:  # type: ignore[assignment]
        head = [f"SIP/2.0 {status} {'OK' if status == 200 else 'Unauthorized'}"]
        for name in ("Via", "From", "Call-ID", "CSeq"):
            head += [f"{name}: {v}" for v in req.headers.get_lines(name)]
        head.append(f"To: {req.headers.get('To')};tag=phone")
        head += list(extra)
        await self.send(("\r\n".join(head) + "\r\nContent-Length: 0\r\n\r\n").encode())


async def _notify(phone: SipPhone) -> Request:
    while True:
        msg = await phone.recv()
        if isinstance(msg, Request) and msg.method == "NOTIFY":
            return msg


@pytest.mark.parametrize("mac,user,event", [(SPA_MAC, "22000001", "resync"), (GS_MAC, "22000003", "check-sync")])
async def test_resync_sends_a_notify_that_answers_the_adapters_challenge(
    prov: Prov, mac: str, user: str, event: str
) -> None:
    status, body = await prov.api("POST", f"/api/v1/adapters/{mac}/resync")
    assert status == 409  # nothing registered yet
    phone = SipPhone(prov.services.settings.sip_listen[0][1])
    try:
        await phone.register(user, PASSWORDS[user])
        api = asyncio.ensure_future(prov.api("POST", f"/api/v1/adapters/{mac}/resync?wait=5"))
        first = await _notify(phone)
        assert first.headers.get("Event") == event
        assert first.uri == f"sip:{user}@127.0.0.1:{phone.port}"
        # Like a Cisco: challenge the NOTIFY, act only on the retry signed with the line's password.
        realm, nonce = "spa-ata", "n0nce-from-the-adapter"
        await phone.answer(first, 401, [f'WWW-Authenticate: Digest realm="{realm}", nonce="{nonce}", '
                                        'algorithm=MD5, qop="auth"'])
        second = await _notify(phone)
        creds = digest.parse_credentials(second.headers.get("Authorization") or "")
        assert (creds.username, creds.realm, creds.nonce) == (user, realm, nonce)
        assert digest.verify(creds, "NOTIFY", digest.ha1(user, realm, PASSWORDS[user], "MD5"))
        assert second.call_id == first.call_id and second.cseq.seq == first.cseq.seq + 1
        await phone.answer(second, 200)
        status, body = await api
    finally:
        phone.close()
    assert status == 202
    assert body["event"] == event
    [sent] = body["sent"]
    assert (sent["port"], sent["status"], sent["result"], sent["challenged"]) == (1, 200, "accepted", True)
    assert sent["target"] == f"udp:127.0.0.1:{phone.port}"
