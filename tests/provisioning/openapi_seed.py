"""A database with one of everything the operator API shows, for the OpenAPI tests.

The fuzzing and the schema walk validate answers against the description; an
empty list validates against any item schema, so every list route here has at
least one real row behind it: customers with contacts, barring, fraud limits and
a credit limit, adapters and lines (``examples/customers.yaml``), trunks and
routes, rated calls (answered with a price, refused with a cause, forwarded,
incoming), a registration, lamp events, config fetches and an unclaimed adapter. What only the
API makes (a suspension, an operator user, a second token) is made through the
API once the switch runs (``seed_over_api``).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from harness.softswitch import import_file
from switch.store import models as m
from switch.store.engine import make_engine, make_session_factory

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "customers.yaml"

#: Objects the seed makes, for the path parameters of the schema walk.
CUSTOMER, MAC, NUMBER, TRUNK, ROUTE = "C1001", "00:0E:08:AB:CD:01", "22000001", "carrier-a", "+47"
UNCLAIMED_MAC = "00:0E:08:AB:CD:99"


def seed_database(db_url: str, key_file: Path, cwd: Path) -> None:
    """The example import plus rows the switch writes itself while it runs (calls, lamps, fetches)."""
    import_file(db_url, str(EXAMPLE), key_file=key_file, cwd=cwd)
    asyncio.run(_add_rows(db_url))


async def _add_rows(db_url: str) -> None:
    engine = make_engine(db_url)
    sf = make_session_factory(engine)
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        async with sf() as session, session.begin():
            lines = dict((await session.execute(
                select(m.Number.e164, m.Line.id).join(m.Line, m.Line.number_id == m.Number.id))).all())
            adapter_id = (await session.execute(select(m.Adapter.id).where(m.Adapter.mac == "000e08abcd01"))).scalar_one()
            trunk_id = (await session.execute(select(m.Trunk.id).where(m.Trunk.name == TRUNK))).scalar_one()
            route_id = (await session.execute(select(m.Route.id).where(m.Route.prefix == ROUTE))).scalar_one()
            line1, line2 = lines["+4722000001"], lines["+4722000002"]
            common: dict[str, Any] = {"called_line_id": None, "route_id": None, "route_prefix": None, "trunk_id": None,
                                      "trunk_name": None, "forwarded_from": None, "answer_at": None, "duration_s": 0,
                                      "charge_ore": None, "zone": None, "tariff_version": None, "support_code": None,
                                      "decision_trail": None, "forward_chain": None, "quality": None}
            t0 = now - timedelta(days=1)
            calls = [
                {**common, "call_id": "answered", "direction": m.CallDirection.OUTGOING, "calling_line_id": line1,
                 "calling_number": "+4722000001", "dialled": "004612345678", "normalised": "+4612345678",
                 "number_class": "international", "route_id": route_id, "route_prefix": ROUTE, "trunk_id": trunk_id,
                 "trunk_name": TRUNK, "setup_at": t0, "answer_at": t0 + timedelta(seconds=3),
                 "end_at": t0 + timedelta(seconds=125), "duration_s": 122, "final_code": 200, "cause": "NORMAL",
                 "charge_ore": 249, "zone": "nordic", "tariff_version": 1,
                 "decision_trail": json.dumps(["destination: trunks carrier-a (route +47)"]),
                 "quality": {"mos": 4.2, "loss_pct": 0.1}},
                {**common, "call_id": "barred", "direction": m.CallDirection.OUTGOING, "calling_line_id": line1,
                 "calling_number": "+4722000001", "dialled": "82012345", "normalised": "+4782012345",
                 "number_class": "premium", "setup_at": t0 + timedelta(minutes=5),
                 "end_at": t0 + timedelta(minutes=5, seconds=4), "final_code": 403, "cause": "BARRED",
                 "support_code": "21", "charge_ore": 0, "zone": "premium", "tariff_version": 1,
                 "decision_trail": json.dumps(["barring: premium (customer)"])},
                {**common, "call_id": "forwarded", "direction": m.CallDirection.INCOMING, "calling_line_id": None,
                 "calling_number": "+4791234567", "called_line_id": line2, "dialled": "+4722000002",
                 "normalised": "+4722000002", "number_class": "fixed", "forwarded_from": "+4722000002",
                 "setup_at": t0 + timedelta(minutes=9), "answer_at": t0 + timedelta(minutes=9, seconds=8),
                 "end_at": t0 + timedelta(minutes=10), "duration_s": 52, "final_code": 200, "cause": "NORMAL",
                 "forward_chain": json.dumps([{"from": "+4722000002", "to": "+4722000001", "reason": "no-answer"}])},
                {**common, "call_id": "internal", "direction": m.CallDirection.ONNET, "calling_line_id": line2,
                 "calling_number": "+4722000002", "called_line_id": line1, "dialled": "22000001",
                 "normalised": "+4722000001", "number_class": "fixed", "setup_at": t0 + timedelta(minutes=20),
                 "end_at": None, "final_code": None, "cause": None},
            ]
            await session.execute(insert(m.CallRecord), calls)
            await session.execute(insert(m.LampEvent), [
                {"adapter_id": adapter_id, "lamp": m.LampName.TEL1, "old_state": None, "new_state": m.LampState.OK,
                 "reason": "registered", "at": now - timedelta(hours=2)},
                {"adapter_id": adapter_id, "lamp": m.LampName.TEL1, "old_state": m.LampState.OK,
                 "new_state": m.LampState.OFF, "reason": "registration expired", "at": now - timedelta(hours=1)},
            ])
            await session.execute(insert(m.ConfigFetch), [
                {"adapter_id": adapter_id, "fetched_at": now - timedelta(hours=3), "remote_addr": "192.0.2.50",
                 "user_agent": "Cisco/SPA112-1.4.1 (000E08ABCD01)", "config_hash": "ab" * 32}])
            # a registration nobody answers at (a closed local port): the status route shows its contact and pings
            await session.execute(insert(m.Binding), [
                {"line_id": line1, "contact_uri": "sip:22000001@127.0.0.1:9", "received_host": "127.0.0.1",
                 "received_port": 9, "transport": m.Transport.UDP, "expires_at": now + timedelta(hours=1),
                 "call_id": "seed-registration", "cseq": 1, "user_agent": "Cisco/SPA112-1.4.1(SR5)",
                 "instance": None, "reg_id": None, "q": None, "path": None, "registered_at": now,
                 "last_keepalive": None}])
            await session.execute(insert(m.UnclaimedAdapter), [
                {"mac": "000e08abcd99", "first_seen_at": now - timedelta(days=2), "last_seen_at": now,
                 "last_addr": "192.0.2.99", "user_agent": "Cisco/SPA112-1.4.1 (000E08ABCD99)", "model_hint": "spa112",
                 "fetch_count": 3},
                {"mac": "c074ad000001", "first_seen_at": now, "last_seen_at": now, "last_addr": "192.0.2.98",
                 "user_agent": None, "model_hint": None, "fetch_count": 1}])
    finally:
        await engine.dispose()


def _call(base: str, token: str, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def seed_over_api(base: str, token: str) -> None:
    """What only the API makes: a suspension (and a lifted one), an operator user, a customer token."""
    for path, body in [
        ("/api/v1/suspensions", {"customer": "C1002", "level": "soft", "reason": "unpaid", "note": "unpaid"}),
        ("/api/v1/suspensions", {"customer": CUSTOMER, "line": NUMBER, "level": "hard", "reason": "other",
                                 "note": "to lift"}),
        ("/api/v1/users", {"username": "kari.support", "role": "support", "display_name": "Kari"}),
        ("/api/v1/tokens", {"role": "customer", "customer": "C1002", "label": "min side"}),
    ]:
        status, answer = _call(base, token, "POST", path, body)
        assert status in (200, 201), (path, status, answer)
    status, answer = _call(base, token, "GET", f"/api/v1/customers/{CUSTOMER}/suspensions")
    lifted = [s["id"] for s in answer["suspensions"] if s.get("lifted_at") is None]
    status, answer = _call(base, token, "POST", f"/api/v1/suspensions/{lifted[0]}/lift", {"note": "paid"})
    assert status == 200, answer
