"""The OpenAPI description: valid 3.1, equal to the router, served, and fuzzed against a running switch.

The router check is what keeps the description honest: a new route without
its description (or a description of a route that is gone) fails here. The
fuzzing sends schemathesis-generated requests (valid and invalid bodies,
parameters) to a real `softswitch run` and requires no 500 and answers that
fit the description.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from harness.softswitch import SwitchProcess, create_token, import_file
from provisioning.api.openapi import spec
from provisioning.app import API_ROUTES
from tests.conftest import ADAPTER

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
    home = tmp_path_factory.mktemp("fuzz")
    db_url = f"sqlite+aiosqlite:///{home / 'fuzz.db'}"
    key = home / "softswitch.key"
    import_file(db_url, ADAPTER.document(), key_file=key, cwd=home)
    token = create_token(db_url, key_file=key, cwd=home)
    proc = SwitchProcess(db_url=db_url, workdir=home, key_file=key, extra_args=["--digest-algorithms", "MD5"])
    proc.start()
    try:
        yield proc, token
    finally:
        proc.stop()


def test_the_switch_serves_its_description(fuzz_switch: tuple[SwitchProcess, str]) -> None:
    proc, _ = fuzz_switch
    with urllib.request.urlopen(proc.http_url + "/api/v1/openapi.json", timeout=5) as resp:
        served: Any = json.loads(resp.read())
    assert served == spec()


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
        checks=[not_a_server_error, response_schema_conformance, status_code_conformance],
    )
