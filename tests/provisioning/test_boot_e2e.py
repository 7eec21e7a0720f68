"""Boot to dial tone, end to end: `softswitch run` (SQLite and PostgreSQL), a simulated
Grandstream HT802 speaking real HTTP, and SIPp registering both of its lines.

The adapter does what the real unit does after a factory reset with DHCP option 66 pointing
at the switch (ATA_FORMATS.md §2.1): it asks for its binary ``cfg<mac>`` (404), then
``cfg<mac>.xml`` at the unauthenticated location, which is the bootstrap that sets its config
server (P212/P237) to ``/cfg``; there it asks again, is challenged, and answers with the HTTP
digest credentials staged on it (P1360/P1361, from the operator's profile-url API) -- the only
secret a factory-fresh adapter can hold. From the config it reads its SIP server, user IDs,
auth IDs and passwords, and registers both ports. The issue's promise: both lines show ok in
the status API within 5 seconds of the adapter's first request.
"""

from __future__ import annotations

import hashlib
import http.client
import time
import xml.etree.ElementTree as ET
from pathlib import Path
import pytest

from harness.sipp import run_sipp
from harness.softswitch import SwitchProcess, adapter_status, http_get_json, import_file, poll_until
from switch.sip import digest
from tests.conftest import AdapterData, LineData, SwitchHome

# No skip without SIPp: run_sipp fails with "sipp ... is not installed" (bootstrap --test installs it).
pytestmark = pytest.mark.e2e

BOOT_DEADLINE = 5.0
HT802 = AdapterData(
    customer_id="C2001",
    mac="C0:74:AD:12:34:56",
    model="ht802",
    lines=(LineData(1, "22000011", "Boot-secret-11"), LineData(2, "22000012", "Boot-secret-12")),
)
MAC = "c074ad123456"
UA = f"Grandstream Model HW HT802 V2.1A SW 1.0.17.5 DevId {MAC}"


@pytest.fixture
def imported_adapter(switch_home: SwitchHome) -> AdapterData:
    """Overrides tests/conftest.py: this test's adapter is a Grandstream HT802."""
    import_file(switch_home.db_url, HT802.document(), key_file=switch_home.key_file, cwd=switch_home.dir)
    return HT802


class Http:
    """One HTTP/1.1 client per origin, the way an adapter's provisioning client works."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, list[str]], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            conn.request("GET", path, headers={"User-Agent": UA, **(headers or {})})
            r = conn.getresponse()
            hdrs: dict[str, list[str]] = {}
            for k, v in r.getheaders():
                hdrs.setdefault(k.lower(), []).append(v)
            return r.status, hdrs, r.read()
        finally:
            conn.close()


def _params(body: bytes) -> dict[str, str]:
    root = ET.fromstring(body)
    assert root.tag == "gs_provision", body[:200]
    return {el.tag: (el.text or "") for el in root.iter() if el.tag.startswith("P")}


def _injection_csv(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    """user ; [authentication username=AUTH password=PW] ; domain (see the scenario)."""
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for user, auth, password, domain in rows:
            for value in (user, auth, password, domain):
                assert not set(value) & set(";] "), f"SIPp cannot carry {value!r} in an injection file"
            f.write(f"{user};[authentication username={auth} password={password}];{domain}\n")
    return path


def _lamps(switch: SwitchProcess, token: str) -> dict[str, str]:
    body = adapter_status(switch, token, MAC)
    return {k: v["state"] for k, v in body.items() if isinstance(v, dict) and "state" in v}


def test_adapter_boots_fetches_config_and_registers_both_lines_within_5s(
    switch: SwitchProcess, api_token: str, imported_adapter: AdapterData, tmp_path: Path
) -> None:
    # Staging (in the warehouse, before the box ships): the operator reads the adapter's
    # digest credentials and types them into P1360/P1361. Not part of the boot time.
    status, staged = http_get_json(f"{switch.http_url}/api/v1/adapters/{MAC}/profile-url", token=api_token)
    assert status == 200, staged
    user, password = staged["digest"]["username"], staged["digest"]["password"]
    assert staged["staging"]["digest"]["P1360"] == user == MAC
    assert _lamps(switch, api_token) == {"pwr": "off", "wan": "off", "tel1": "off", "tel2": "off"}

    # ---- boot ----
    t0 = time.monotonic()
    dhcp66 = Http("127.0.0.1", switch.http_port)
    status, _, _ = dhcp66.get(f"/cfg{MAC}")  # binary config first: not served
    assert status == 404
    status, _, boot = dhcp66.get(f"/cfg{MAC}.xml")
    assert status == 200
    bootstrap = _params(boot)
    assert ET.fromstring(boot).findtext("mac") == MAC
    assert password not in boot.decode() and "Boot-secret" not in boot.decode()
    assert bootstrap["P212"] == "1"  # HTTP
    netloc, _, directory = bootstrap["P237"].partition("/")
    host, _, port = netloc.partition(":")
    server = Http(host, int(port))
    path = f"/{directory}/cfg{MAC}.xml"
    status, headers, _ = server.get(path)
    assert status == 401
    challenge = digest.choose_challenge(
        [c for v in headers["www-authenticate"] for c in digest.parse_challenges(v)])
    status, _, body = server.get(path, {"Authorization": digest.DigestClient(user, password).authorize(
        challenge, "GET", path)})
    assert status == 200, body
    cfg = _params(body)
    assert (cfg["P271"], cfg["P401"]) == ("1", "1")  # both accounts active
    domain = cfg["P47"]
    proxy = cfg["P48"]
    lines = [(cfg["P35"], cfg["P36"], cfg["P34"]), (cfg["P735"], cfg["P736"], cfg["P734"])]
    assert lines == [("4722000011", "22000011", "Boot-secret-11"), ("4722000012", "22000012", "Boot-secret-12")]

    csv = _injection_csv(tmp_path / "lines.csv", [(u, a, p, domain) for u, a, p in lines])
    result = run_sipp("uac_register_from_config", proxy, inf_csv=csv, calls=2, transport="u1",
                      workdir=tmp_path / "sipp", timeout=10)
    assert result.ok, result.describe()
    assert (result.successful, result.failed) == (2, 0)

    want = {"pwr": "ok", "wan": "ok", "tel1": "ok", "tel2": "ok"}
    last: dict[str, str] = {}

    def all_ok() -> bool:
        nonlocal last
        last = _lamps(switch, api_token)
        return last == want

    poll_until(all_ok, timeout=BOOT_DEADLINE, interval=0.05)
    elapsed = time.monotonic() - t0
    assert last == want, f"lamps after {elapsed:.2f}s: {last}"
    assert elapsed < BOOT_DEADLINE, f"boot to dial tone took {elapsed:.2f}s"
    print(f"boot to dial tone: {elapsed:.3f} s")

    # The fetch is on record, with the firmware from the User-Agent and the served config's hash.
    status, hist = http_get_json(f"{switch.http_url}/api/v1/adapters/{MAC}/config-fetches", token=api_token)
    assert status == 200
    [fetch] = hist["fetches"]
    assert (fetch["user_agent"], fetch["remote_addr"]) == (UA, "127.0.0.1")
    assert hist["firmware"] == "1.0.17.5"
    assert hist["config"]["changed_since_last_fetch"] is False
    assert fetch["config_hash"] == hashlib.sha256(body).hexdigest()
    status, lamps = http_get_json(f"{switch.http_url}/api/v1/adapters/{MAC}/status", token=api_token)
    assert lamps["tel1"]["reason"].startswith("registered from 127.0.0.1")
