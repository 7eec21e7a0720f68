"""JSON error answers: every 4xx says what is wrong, in a body a script can read."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler


def problem(status: int, message: str, **extra: Any) -> web.Response:
    body = {"error": message, "status": status, **extra}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return problem(exc.status, exc.reason if not exc.text or exc.text.startswith(str(exc.status)) else exc.text)
        raise
