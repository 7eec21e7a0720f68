"""Star codes end to end: SIPp on a line dials GSM codes at `softswitch run` (SQLite and PostgreSQL).

One switch process per database plays the whole story a customer and an operator go through,
so the suite pays for one start: the FAQ's default (``*21*`` refused, "use Min side"), the
operator enabling activation through the API, activation with ``#`` escaped as ``%23`` and
typed bare, status, deactivation, ``#21#`` still working although the table says "refuse"
(written with SQL before the start, so only the loader stands between it and the caller),
``##002#``, an invalid code, and a target the line's barring forbids. After each call the
caller's final response and Reason header, the stored forwarding rule and at the end the
CDRs and the audit trail are checked.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
from pathlib import Path
from typing import Any

import pytest

from harness.db import run_sql as sql
from harness.sipp import run_sipp, write_injection_csv
from harness.softswitch import SwitchProcess, http_get_json, import_file
from tests.conftest import ADAPTER, AdapterData, SwitchHome

from .test_calls_sipp import cdr_rows, finals, flow, header, status_of

pytestmark = [pytest.mark.e2e, pytest.mark.switch_args("--qualify-interval", "0")]

KARI, OLA = ADAPTER.lines  # 22000001 dials the codes; 22000002 is barred from mobile numbers
TARGET = "22000003"
ACTOR = "line:+4722000001 via star code"
DONE = 'Q.850;cause=16;text="feature_code"'
REFUSED = 'Q.850;cause=21;text="feature_code_refused"'


@pytest.fixture
def imported_adapter(switch_home: SwitchHome) -> AdapterData:
    """The adapter plus a third customer's line (a forward target), Ola's line barred from mobile
    numbers, and a ``#21#`` row that says "refuse", all before the switch starts."""
    doc = ADAPTER.document()
    doc["customers"].append(  # type: ignore[union-attr]
        {"id": "C3003", "name": "Per Hansen", "language": "en",
         "adapters": [{"mac": "00:0E:08:AB:CD:03", "model": "spa112",
                       "lines": [{"port": 1, "number": TARGET, "password": "Tel3-secret-03"}]}]}
    )
    import_file(switch_home.db_url, doc, key_file=switch_home.key_file, cwd=switch_home.dir)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    (ola,) = sql(switch_home.db_url, "SELECT id FROM lines WHERE auth_user = :u", {"u": OLA.number})
    sql(switch_home.db_url,
        "INSERT INTO line_barrings (line_id, category, created_at, created_by) VALUES (:l, 'mobile', :t, 'test')",
        {"l": ola["id"], "t": now})
    sql(switch_home.db_url,
        "INSERT INTO feature_code_policies (code, action, announcement, description, updated_at) "
        "VALUES ('#21#', 'refuse', NULL, 'written around the API', :t)", {"t": now})
    return ADAPTER


def dial(switch: SwitchProcess, tmp_path: Path, line: Any, dialled: str) -> tuple[int | None, str | None]:
    """One call from ``line`` (digest on the INVITE) → (final status, Reason header)."""
    csv = write_injection_csv(tmp_path / f"line{line.port}.csv", [(line.number, line.password)])
    r = run_sipp("uac_invite_refused", switch.sip_target, inf_csv=csv, calls=1, timeout=15,
                 workdir=tmp_path / "uac", extra=("-set", "dialled", dialled))
    got = finals(r.received())
    assert got, r.describe()
    assert len({status_of(m) for m in got}) == 1, flow(r.received())
    return status_of(got[0]), header(got[0], "Reason")


def put(switch: SwitchProcess, token: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", switch.http_port, timeout=5)
    try:
        conn.request("PUT", path, body=json.dumps(body),
                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read().decode())
    finally:
        conn.close()


def rules(db_url: str) -> dict[str, tuple[str, int | None, str]]:
    rows = sql(db_url, "SELECT r.kind, r.target, r.timeout_s, r.updated_by FROM forwarding_rules r "
                       "JOIN lines l ON l.id = r.line_id WHERE l.auth_user = :u", {"u": KARI.number})
    return {r["kind"]: (r["target"], r["timeout_s"], r["updated_by"]) for r in rows}


def test_star_codes_from_a_line(switch: SwitchProcess, switch_home: SwitchHome, api_token: str, tmp_path: Path) -> None:
    db = switch_home.db_url

    # The FAQ's default: activation by star code is refused ("use Min side"), nothing stored.
    assert dial(switch, tmp_path, KARI, f"*21*{TARGET}%23") == (403, REFUSED)
    assert rules(db) == {}

    # The operator allows activation; #21# and ##002# cannot be refused through the API.
    for code in ("*21*", "*61*", "*67*"):
        status, body = put(switch, api_token, f"/api/v1/feature-codes/{code}", {"enabled": True})
        assert status == 200 and body["enabled"], body
    status, body = put(switch, api_token, "/api/v1/feature-codes/%2321%23", {"enabled": False})
    assert status == 422 and body["field"] == "enabled", body
    assert put(switch, api_token, "/api/v1/feature-codes/*33*", {"enabled": True})[0] == 404
    assert put(switch, api_token, "/api/v1/feature-codes/*62*", {"enabled": "yes"})[0] == 422
    assert put(switch, api_token, "/api/v1/feature-codes/*62*", {"colour": "red"})[0] == 400
    status, listing = http_get_json(f"http://127.0.0.1:{switch.http_port}/api/v1/feature-codes", token=api_token)
    by_code = {p["code"]: p for p in listing["feature_codes"]}
    assert status == 200 and len(by_code) == 13
    assert by_code["*21*"]["enabled"] and not by_code["*21*"]["default"]["enabled"]
    assert not by_code["*62*"]["enabled"] and by_code["*62*"]["prompt"] == "fwd_use_web"
    assert by_code["#21#"]["enabled"] and by_code["#21#"]["locked"] and by_code["##002#"]["locked"]

    # Activation, # escaped and bare, status, and the rule really stored with who did it.
    assert dial(switch, tmp_path, KARI, f"*21*{TARGET}%23") == (480, DONE)
    assert rules(db) == {"unconditional": (f"+47{TARGET}", None, ACTOR)}
    # The very next call to Kari is forwarded (to Per, who is not registered: 480 after the forward).
    assert dial(switch, tmp_path, OLA, KARI.number) == (480, 'Q.850;cause=20;text="unregistered"')
    assert dial(switch, tmp_path, KARI, "*#21#") == (480, DONE)
    assert dial(switch, tmp_path, KARI, f"*61*{TARGET}*30#") == (480, DONE)
    assert dial(switch, tmp_path, KARI, f"*67*{TARGET}#") == (480, DONE)
    assert rules(db) == {"unconditional": (f"+47{TARGET}", None, ACTOR), "no_answer": (f"+47{TARGET}", 30, ACTOR),
                         "busy": (f"+47{TARGET}", None, ACTOR)}

    # #21# works although its row says "refuse" (the loader ignores that row); ##002# clears the rest.
    assert dial(switch, tmp_path, KARI, "#21#") == (480, DONE)
    assert set(rules(db)) == {"no_answer", "busy"}
    assert dial(switch, tmp_path, OLA, KARI.number) == (480, 'Q.850;cause=20;text="unregistered"')  # not forwarded
    assert dial(switch, tmp_path, KARI, "%23%23002%23") == (480, DONE)
    assert rules(db) == {}

    # Not a code we know; a target the line's barring forbids (Ola may not call mobiles).
    assert dial(switch, tmp_path, KARI, "*33*1234#") == (404, 'Q.850;cause=28;text="invalid_number"')
    assert dial(switch, tmp_path, OLA, "*21*91234567#") == (403, 'Q.850;cause=21;text="forward_not_allowed"')
    assert dial(switch, tmp_path, OLA, f"*21*{TARGET}#") == (480, DONE)  # a fixed number is fine

    # One CDR per star-code call, with its cause; the audit trail names the line.
    calls = cdr_rows(db, 13, settle=0.3)
    to_kari = [c for c in calls if c["number_class"] != "feature_code"]
    assert [(c["dialled"], c["calling_number"], c["forwarded_from"], c["cause"]) for c in to_kari] == [
        (KARI.number, "+4722000002", None, "unregistered"),  # Ola's call to Kari, forwarded ...
        (f"+47{TARGET}", "+4722000001", "+4722000001", "unregistered"),  # ... as Kari's own leg to Per
        (KARI.number, "+4722000002", None, "unregistered"),  # after #21#: Kari herself, not registered
    ], to_kari
    calls = [c for c in calls if c["number_class"] == "feature_code"]
    assert [(c["dialled"], c["cause"], c["final_code"], c["direction"], c["number_class"]) for c in calls] == [
        (f"*21*{TARGET}%23", "feature_code_refused", 403, "onnet", "feature_code"),
        (f"*21*{TARGET}%23", "feature_code", 480, "onnet", "feature_code"),
        ("*#21#", "feature_code", 480, "onnet", "feature_code"),
        (f"*61*{TARGET}*30#", "feature_code", 480, "onnet", "feature_code"),
        (f"*67*{TARGET}#", "feature_code", 480, "onnet", "feature_code"),
        ("#21#", "feature_code", 480, "onnet", "feature_code"),
        ("%23%23002%23", "feature_code", 480, "onnet", "feature_code"),
        ("*33*1234#", "invalid_number", 404, "onnet", "feature_code"),
        ("*21*91234567#", "forward_not_allowed", 403, "onnet", "feature_code"),
        (f"*21*{TARGET}#", "feature_code", 480, "onnet", "feature_code"),
    ]
    actors = {r["actor"] for r in sql(db, "SELECT actor FROM audit_events")}
    assert ACTOR in actors and "line:+4722000002 via star code" in actors


def test_the_other_code_forms_over_sip(switch: SwitchProcess, switch_home: SwitchHome, api_token: str,
                                       tmp_path: Path) -> None:
    """The forms the story above does not dial: *62* (unreachable), each status read-out (*#61#, *#62#,
    *#67#) and each single deactivation (#61#, #62#, #67#), over SIP, with the stored rules after each."""
    db = switch_home.db_url
    for code in ("*61*", "*62*", "*67*"):
        assert put(switch, api_token, f"/api/v1/feature-codes/{code}", {"enabled": True})[0] == 200
    for dialled in (f"*61*{TARGET}#", f"*62*{TARGET}%23", f"*67*{TARGET}#"):
        assert dial(switch, tmp_path, KARI, dialled) == (480, DONE), dialled
    assert set(rules(db)) == {"no_answer", "unreachable", "busy"}
    for status in ("*#61#", "*#62%23", "*%2367#"):
        assert dial(switch, tmp_path, KARI, status) == (480, DONE), status
    assert set(rules(db)) == {"no_answer", "unreachable", "busy"}, "a status read-out changes nothing"
    assert dial(switch, tmp_path, KARI, "#61#") == (480, DONE)
    assert set(rules(db)) == {"unreachable", "busy"}
    assert dial(switch, tmp_path, KARI, "%2362%23") == (480, DONE)
    assert set(rules(db)) == {"busy"}
    assert dial(switch, tmp_path, KARI, "#67#") == (480, DONE)
    assert rules(db) == {}
    assert dial(switch, tmp_path, KARI, "*#67#") == (480, DONE), "status of a kind that is off"
