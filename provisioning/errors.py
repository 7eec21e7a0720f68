"""Error answers: every 4xx says what is wrong in an RFC 9457 ``application/problem+json`` body."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler


PROBLEM_JSON = "application/problem+json"

#: RFC 9110's names where Python's HTTPStatus has older ones; any other status takes HTTPStatus's phrase.
_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
           412: "Precondition Failed", 413: "Content Too Large", 415: "Unsupported Media Type",
           422: "Unprocessable Content", 428: "Precondition Required", 429: "Too Many Requests",
           500: "Internal Server Error", 503: "Service Unavailable"}


def _title(status: int) -> str:
    try:
        return _TITLES.get(status) or HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_details(status: int, detail: str, *, field: str | None = None, **extra: Any) -> web.Response:
    """An RFC 9457 ``application/problem+json`` answer; ``field`` names the wrong input (``error`` is for old clients).

    The one error answer of every route: there is no ``application/json`` variant any more (the older routes
    had one), so a client can tell an error from a result by its media type alone.
    """
    body: dict[str, Any] = {"type": "about:blank", "title": _title(status), "status": status,
                            "detail": detail, "error": detail}
    if field:
        body["field"] = field
    body.update(extra)
    return web.Response(status=status, text=json.dumps(body), content_type=PROBLEM_JSON)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """An ``HTTPException`` (aiohttp's own 404/405, a handler's ``raise``) becomes a problem+json answer.

    Its text, when a handler gave one, is the ``detail``; aiohttp's default "404: Not Found" is not, so the
    reason is. An exception that already carries a problem+json body is passed on as it is, not wrapped twice.
    """
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != PROBLEM_JSON:
            return problem_details(exc.status, exc.reason if not exc.text or exc.text.startswith(str(exc.status))
                                   else exc.text)
        raise
