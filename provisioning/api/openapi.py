"""The OpenAPI 3.1 description of the operator API, served at /api/v1/openapi.json.

The description is written by hand (``openapi.yaml`` beside this file) and
checked against the router by tests/provisioning/test_openapi.py: no route
without a description, no description without a route. It is read once.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

routes = web.RouteTableDef()

SPEC_FILE = Path(__file__).with_name("openapi.yaml")


@functools.cache
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC_FILE.read_text(encoding="utf-8"))
    return loaded


@functools.cache
def _spec_json() -> str:
    return json.dumps(spec(), ensure_ascii=False)


@routes.get("/api/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """This description (no token needed: it holds no data)."""
    return web.Response(text=_spec_json(), content_type="application/json")
