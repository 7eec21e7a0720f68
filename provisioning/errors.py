"""JSON error answers: every 4xx says what is wrong, in a body a script can read."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler


_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
           412: "Precondition Failed", 413: "Content Too Large", 415: "Unsupported Media Type",
           422: "Unprocessable Content", 428: "Precondition Required", 429: "Too Many Requests",
           500: "Internal Server Error", 503: "Service Unavailable"}


def problem_details(status: int, detail: str, *, field: str | None = None,
                    content_type: str = "application/problem+json", **extra: Any) -> web.Response:
    """An RFC 9457 problem+json answer; ``field`` names the offending input (``error`` kept for old clients)."""
    body: dict[str, Any] = {"type": "about:blank", "title": _TITLES.get(status, "Error"), "status": status,
                            "detail": detail, "error": detail}
    if field:
        body["field"] = field
    body.update(extra)
    return web.Response(status=status, text=json.dumps(body), content_type=content_type)


def problem(status: int, message: str, *, field: str | None = None, **extra: Any) -> web.Response:
    """The older routes' error answer: the same RFC 9457 members, as ``application/json``."""
    return problem_details(status, message, field=field, content_type="application/json", **extra)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return problem(exc.status, exc.reason if not exc.text or exc.text.startswith(str(exc.status)) else exc.text)
        raise
