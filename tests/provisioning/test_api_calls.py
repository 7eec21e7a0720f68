"""Operator API: a line's call history (CDRs) as JSON and CSV, with clear 4xx answers."""

from __future__ import annotations

import asyncio
import urllib.request
from datetime import datetime, timedelta, timezone

from sqlalchemy import insert, select

from switch.store import models as m
from switch.store.engine import make_engine, make_session_factory


async def _add_calls(db_url: str, number_e164: str) -> None:
    engine = make_engine(db_url)
    sf = make_session_factory(engine)
    try:
        async with sf() as session, session.begin():
            line_id = (
                await session.execute(
                    select(m.Line.id).join(m.Number, m.Line.number_id == m.Number.id).where(m.Number.e164 == number_e164)
                )
            ).scalar_one()
            t0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
            await session.execute(
                insert(m.CallRecord),
                [
                    {
                        "call_id": f"c{i}", "direction": m.CallDirection.OUTGOING,
                        "calling_line_id": line_id, "calling_number": number_e164, "dialled": "004612345678",
                        "normalised": "+4612345678", "number_class": "international", "setup_at": t0 + timedelta(minutes=i),
                        "answer_at": None, "end_at": t0 + timedelta(minutes=i, seconds=5), "duration_s": 0,
                        "final_code": 403, "cause": "BARRED", "charge_ore": 0, "zone": "nordic", "tariff_version": 1, "support_code": "21",
                    }
                    for i in range(3)
                ],
            )
    finally:
        await engine.dispose()


def _get(url: str, token: str) -> tuple[int, str, str]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read().decode()


def test_line_call_history(switch, api_token, imported_adapter, db_url) -> None:  # type: ignore[no-untyped-def]
    import json

    number = imported_adapter.lines[0].number
    e164 = "+47" + number if len(number) == 8 else number
    asyncio.run(_add_calls(db_url, e164))
    base = switch.http_url
    status, ctype, body = _get(f"{base}/api/v1/lines/{number}/calls?limit=2", api_token)
    assert status == 200 and ctype.startswith("application/json")
    data = json.loads(body)
    assert data["number"] == e164
    assert [c["call_id"] for c in data["calls"]] == ["c2", "c1"]
    assert data["calls"][0]["cause"] == "BARRED" and data["calls"][0]["final_code"] == 403
    assert (data["calls"][0]["price_ore"], data["calls"][0]["zone"], data["calls"][0]["tariff_version"]) == (0, "nordic", 1)
    assert data["calls"][0]["support_code"] == "21"  # what the announcement said (docs/announcements.md)
    status, ctype, body = _get(f"{base}/api/v1/lines/{number}/calls?format=csv", api_token)
    assert status == 200 and ctype.startswith("text/csv")
    assert body.splitlines()[0].startswith("call_id,direction,calling_number")
    assert len(body.splitlines()) == 4
    status, _, body = _get(f"{base}/api/v1/lines/{number}/calls?since=2026-11-01T12:01:30%2B00:00", api_token)
    assert [c["call_id"] for c in json.loads(body)["calls"]] == ["c2"]
    # clear answers to bad requests
    status, _, body = _get(f"{base}/api/v1/lines/abc/calls", api_token)
    assert status == 400 and "not a telephone number" in body
    status, _, body = _get(f"{base}/api/v1/lines/{number}/calls?limit=0", api_token)
    assert status == 400 and "limit" in body
    status, _, body = _get(f"{base}/api/v1/lines/{number}/calls?since=yesterday", api_token)
    assert status == 400 and "ISO 8601" in body
    status, _, body = _get(f"{base}/api/v1/lines/29999999/calls", api_token)
    assert status == 404
    status, _, _ = _get(f"{base}/api/v1/lines/{number}/calls", "wrong-token")
    assert status == 401
