"""The OpenAPI description: valid 3.1, equal to the router, served, and fuzzed against a running switch.

The router check is what keeps the description honest: a new route without
its description (or a description of a route that is gone) fails here. The
answers are held to it on a switch with one of everything in its database
(tests/provisioning/openapi_seed.py), so the lists are not empty: every GET
route is read with a real object and its body validated against the
documented schema (JSON Schema 2020-12; the schemas name every field and allow
no others, so a handler that adds or drops a field fails here until the
description says so), and schemathesis-generated requests (valid and invalid
bodies, parameters) must get no 500, only documented status codes and media
types, and bodies that fit the schema of their status.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from harness.softswitch import SwitchProcess, create_token
from provisioning.api.openapi import spec
from provisioning.app import API_ROUTES
from tests.provisioning import openapi_seed as seed

pytestmark = pytest.mark.e2e


def _router_operations() -> set[tuple[str, str]]:
    app = web.Application()
    for table in API_ROUTES:
        app.router.add_routes(table)
    ops = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        ops.add((route.method.lower(), str(path)))
    return ops | {("get", "/health")}  # added by create_app itself


def _documented() -> set[tuple[str, str]]:
    return {(m, p) for p, methods in spec()["paths"].items() for m in methods}


def test_the_description_is_valid_openapi_3_1() -> None:
    doc = spec()
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_every_route_is_described_and_every_description_has_a_route() -> None:
    routes, documented = _router_operations(), _documented()
    assert sorted(routes - documented) == [], "routes without a description in provisioning/api/openapi.yaml"
    assert sorted(documented - routes) == [], "described but not routed"
    ids = [op["operationId"] for methods in spec()["paths"].values() for op in methods.values()]
    assert len(ids) == len(set(ids)), "operationIds are unique"
    for path, methods in spec()["paths"].items():
        declared = {p["name"] for op in methods.values() for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), path


# ------------------------------------------------------------------------ fuzzing a running switch


@pytest.fixture(scope="module")
def fuzz_switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SwitchProcess, str]]:
    """A running switch whose database holds one of everything the API shows (and an admin token)."""
    home = tmp_path_factory.mktemp("fuzz")
    db_url = f"sqlite+aiosqlite:///{home / 'fuzz.db'}"
    key = home / "softswitch.key"
    seed.seed_database(db_url, key, home)
    token = create_token(db_url, key_file=key, role="admin", cwd=home)
    proc = SwitchProcess(db_url=db_url, workdir=home, key_file=key, extra_args=["--digest-algorithms", "MD5"])
    proc.start()
    try:
        seed.seed_over_api(proc.http_url, token)
        yield proc, token
    finally:
        proc.stop()


def test_the_switch_serves_its_description(fuzz_switch: tuple[SwitchProcess, str]) -> None:
    proc, _ = fuzz_switch
    with urllib.request.urlopen(proc.http_url + "/api/v1/openapi.json", timeout=5) as resp:
        served: Any = json.loads(resp.read())
    assert served == spec()


# ------------------------------------------------------------------------ every GET, with a seeded object

#: Path parameters of the GET routes: objects the seed made.
_PATH_VALUES = {"mac": seed.MAC, "customer": seed.CUSTOMER, "id": seed.CUSTOMER, "ref": seed.CUSTOMER,
                "number": seed.NUMBER, "name": seed.TRUNK, "prefix": seed.ROUTE}
#: Where each list answer keeps its rows: empty there would validate against any item schema.
_ROWS = {"list_adapters": "items", "list_customers": "items", "list_lines": "items", "list_numbers": "items",
         "list_tokens": "items", "list_users": "items", "list_trunks": "items", "list_routes": "items",
         "audit": "items", "list_unclaimed": "unclaimed", "list_feature_codes": "feature_codes",
         "line_calls": "calls", "invoice": "calls", "invoice_period_summary": "zones",
         "customer_suspensions": "suspensions", "lamp_events": "events", "config_fetches": "fetches",
         "get_adapter": "lines", "get_customer": "contacts", "adapter_status": "lines", "line_policy": "forwarding"}
#: GET routes whose seeded answer is an empty list all the same (alerts come from the running fraud guard only).
_MAY_BE_EMPTY = {"alerts": "alerts", "report_inactive_lines": "lines"}


def _gets() -> list[tuple[str, str, dict[str, Any]]]:
    return [(op["operationId"], path, op) for path, methods in spec()["paths"].items()
            for method, op in methods.items() if method == "get"]


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    """The response schema with the description's components beside it, so its ``#/components/...`` refs resolve."""
    return Draft202012Validator({**schema, "components": spec()["components"]}, format_checker=FormatChecker())


def test_the_problem_schema_holds_every_error_shape() -> None:
    """The one error helper answers problem+json with the RFC 9457 members the shared Problem schema requires."""
    from provisioning import errors

    assert not hasattr(errors, "problem"), "the application/json variant is retired: use problem_details"
    check = _validator({"$ref": "#/components/schemas/Problem"})
    for resp in (errors.problem_details(404, "no such adapter"),
                 errors.problem_details(422, "bad", field="target", code="*21*"),
                 errors.problem_details(409, "exists", field="id"),
                 errors.problem_details(422, "x: bad", field="x", issues=[{"field": "x", "message": "bad"}])):
        assert resp.text is not None and resp.content_type == "application/problem+json"
        check.validate(json.loads(resp.text))
    with pytest.raises(Exception, match="Additional properties"):
        check.validate({**json.loads(errors.problem_details(400, "x").text or "{}"), "undocumented": 1})


def test_every_documented_error_is_problem_json_and_every_success_is_not() -> None:
    """4xx/5xx answers are documented as application/problem+json with the Problem schema, and as nothing else."""
    doc = spec()
    shared = doc["components"]["responses"]
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            for status, answer in op["responses"].items():
                ref = answer.get("$ref")
                resolved = shared[ref.rsplit("/", 1)[1]] if ref else answer
                media = resolved.get("content", {})
                if status[0] in "45":
                    assert list(media) == ["application/problem+json"], (method, path, status, list(media))
                    assert media["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
                else:
                    assert "application/problem+json" not in media, (method, path, status)


def test_every_get_route_answers_a_seeded_object_as_described(fuzz_switch: tuple[SwitchProcess, str]) -> None:
    """Each GET with real path values: 200, the documented media type, a body valid against the schema, rows."""
    proc, token = fuzz_switch
    walked = set()
    for op_id, path, op in _gets():
        url = proc.http_url + re.sub(r"{(\w+)}", lambda m: urllib.parse.quote(_PATH_VALUES[m.group(1)], safe=":+"), path)
        # a required query parameter (a new route's) takes its documented example
        query = {p["name"]: p.get("example") for p in op.get("parameters", []) if p["in"] == "query" and p.get("required")}
        assert None not in query.values(), f"{op_id}: give each required query parameter an example (a seeded value)"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, ctype, raw = resp.status, resp.headers.get_content_type(), resp.read()
        documented = op["responses"][str(status)]
        assert status == 200 and ctype in documented["content"], (op_id, status, ctype)
        schema = documented["content"][ctype]["schema"]
        body = json.loads(raw) if ctype == "application/json" else raw.decode()
        errors = sorted(_validator(schema).iter_errors(body), key=lambda e: list(e.absolute_path))
        assert not errors, f"{op_id}: " + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])
        rows = _ROWS.get(op_id)
        if rows is not None:
            assert body[rows], f"{op_id}: the seed left {rows!r} empty, so its items were not checked"
            if op_id == "adapter_status":
                assert body["lines"][0]["contacts"], "the seeded registration is not shown"
        else:
            assert op_id in _MAY_BE_EMPTY or not any(isinstance(v, list) and not v for v in (
                body.values() if isinstance(body, dict) else [])), f"{op_id}: an empty list in the answer"
        walked.add(op_id)
    assert walked == {op_id for op_id, _, _ in _gets()}
    assert len(walked) >= 30


def test_a_line_suspension_answers_with_its_stored_line(fuzz_switch: tuple[SwitchProcess, str]) -> None:
    """Create echoes the stored E.164 line (not the body's spelling, here a JSON number); lift names it too."""
    proc, token = fuzz_switch
    status, made = seed._call(proc.http_url, token, "POST", "/api/v1/suspensions",
                              {"customer": seed.CUSTOMER, "line": 22000002, "level": "soft", "reason": "other"})
    assert status == 201 and made["line"] == "+4722000002", made
    _validator({"$ref": "#/components/schemas/SuspensionCreated"}).validate(made)
    status, lifted = seed._call(proc.http_url, token, "POST", f"/api/v1/suspensions/{made['id']}/lift", {})
    assert status == 200 and lifted["line"] == "+4722000002" and lifted["active"] is False, lifted
    _validator({"$ref": "#/components/schemas/Suspension"}).validate(lifted)


def test_assigning_an_unclaimed_adapter_to_a_malformed_customer_id_is_a_400(
    fuzz_switch: tuple[SwitchProcess, str],
) -> None:
    """Found by the fuzzing: ``customer_id`` as an object (or past 64 bits) went into SQL and answered 500."""
    proc, token = fuzz_switch
    for bad in ({}, [1], "7", True, 2**70, 0):
        status, answer = seed._call(proc.http_url, token, "POST",
                                    f"/api/v1/unclaimed-adapters/{seed.UNCLAIMED_MAC}/assign", {"customer_id": bad})
        assert status == 400 and '"field": "customer_id"' in answer, (bad, status, answer)
    status, answer = seed._call(proc.http_url, token, "POST",
                                f"/api/v1/unclaimed-adapters/{seed.UNCLAIMED_MAC}/assign", {"customer": {"id": 1}})
    assert status == 400 and '"field": "customer"' in answer, answer


def test_a_field_the_description_does_not_name_fails_the_walk() -> None:
    """The schemas are closed: an extra field and a missing one are both violations (what the walk relies on)."""
    line = {"number": "+4722000001", "customer": "C1001", "adapter": "00:0e:08:ab:cd:01", "port": 1,
            "auth_user": "22000001", "display_name": None, "language": "nb", "alarm": False, "unlisted": False,
            "enabled": True}
    check = _validator({"$ref": "#/components/schemas/Line"})
    check.validate(line)
    assert list(check.iter_errors({**line, "address": "Storgata 1"}))
    assert list(check.iter_errors({k: v for k, v in line.items() if k != "enabled"}))
    assert list(check.iter_errors({**line, "setup_at": "yesterday", "language": "sv"}))


# ------------------------------------------------------------------------ fuzzing (after the walk: it changes data)

_SCHEMA = schemathesis.openapi.from_dict(spec())


@_SCHEMA.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_fuzzed_requests_get_no_500_and_answers_that_fit_the_description(
    case: Any, fuzz_switch: tuple[SwitchProcess, str]
) -> None:
    proc, token = fuzz_switch
    case.call_and_validate(
        base_url=proc.http_url,
        headers={"Authorization": f"Bearer {token}"},
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
        # longer than the longest answer the API may take on purpose (resync ?wait= up to 10 s): with
        # schemathesis' 10 s the fuzzed wait=10.0 raced the client's timeout
        timeout=30,
    )
