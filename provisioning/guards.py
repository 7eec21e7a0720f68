"""HTTP guards for every request: body and string-length limits, and one access-log line each.

Limits: an API body is at most ``MAX_BODY`` bytes (413 beyond), and every JSON
string in it, at any depth, at most ``MAX_STRING`` characters (400 naming the
field) — a 1 MB customer name used to be stored as given. Handlers keep their
own tighter, field-specific checks; this is the floor under all of them, so an
endpoint added later cannot forget it. Other request bodies (the web pages'
forms, anything else posted) are at most ``MAX_FORM_BODY``, the bulk import upload
``MAX_UPLOAD_BODY``; a body without a Content-Length there gets 411 (browsers
always send one), so the cap is known before a byte is read. The web pages' form
fields have the same string limit (``provisioning.ui.limits``), the import file's
fields too (``switch.store.import_validation``).

Server header: ``softswitch``, no versions (aiohttp's default names Python's and
its own, which only helps a scanner pick an exploit).

Access log: one INFO line per API request on logger ``softswitch.access``:
method, path (no query: tokens and searches stay out of logs), status, time,
source address and the token id that made it (never the token).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from switch.store.import_validation import MAX_TEXT

from .errors import problem_details

MAX_BODY = 256 * 1024
#: the longest string in any API body, form field or import file field
MAX_STRING = MAX_TEXT
#: a web form (``/ui/``, ``/min-side/``) or any other non-API body
MAX_FORM_BODY = 1024 * 1024
#: the bulk import file (UI upload)
MAX_IMPORT = 5 * 1024 * 1024
#: the bulk import form: the file plus the form around it
MAX_UPLOAD_BODY = MAX_IMPORT + 64 * 1024
UPLOAD_PATHS = frozenset({"/ui/import"})
#: aiohttp's own ceiling (``client_max_size``): the largest of the caps above
CLIENT_MAX_SIZE = MAX_UPLOAD_BODY

access = logging.getLogger("softswitch.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


#: the largest id or count a query or path may give: a database integer (SQLite and PostgreSQL bigint)
MAX_WHOLE = 2**63 - 1


def whole_number(raw: str, at_most: int = MAX_WHOLE) -> int | None:
    """``raw`` as a whole number of ASCII digits, at most ``at_most``; None if it is not one.

    ``str.isdigit`` alone let through '²' (which ``int`` refuses) and ids past a
    database integer (which the driver refuses): both were 500s.
    """
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        return None
    n = int(raw)
    return n if n <= at_most else None


def _too_long(value: Any, where: str) -> str | None:
    """The path of the first string longer than MAX_STRING (keys included), or None."""
    if isinstance(value, str):
        return where if len(value) > MAX_STRING else None
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and len(k) > MAX_STRING:
                return f"{where}.<key>" if where else "<key>"
            found = _too_long(v, f"{where}.{k}" if where else str(k))
            if found:
                return found
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = _too_long(v, f"{where}[{i}]")
            if found:
                return found
    return None


@web.middleware
async def limits(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in ("POST", "PUT", "PATCH") and request.path.startswith("/api/"):
        if request.content_length is not None and request.content_length > MAX_BODY:
            return problem_details(413, f"request body larger than {MAX_BODY} bytes")
        body = await request.read()  # cached: the handler's request.json() reads it again
        if len(body) > MAX_BODY:
            return problem_details(413, f"request body larger than {MAX_BODY} bytes")
        if body and "json" in (request.content_type or "json"):
            try:
                doc = json.loads(body)
            except ValueError:
                doc = None  # the handler says what is wrong with it
            where = _too_long(doc, "") if doc is not None else None
            if where is not None:
                return problem_details(400, f"{where or 'body'}: at most {MAX_STRING} characters")
    elif request.method in ("POST", "PUT", "PATCH"):
        cap = MAX_UPLOAD_BODY if request.path in UPLOAD_PATHS else MAX_FORM_BODY
        if request.content_length is None and request.body_exists:
            return problem_details(411, "a request body needs a Content-Length here")
        if request.content_length is not None and request.content_length > cap:
            return problem_details(413, f"request body larger than {cap} bytes")
    return await handler(request)


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        return await handler(request)
    start = time.monotonic()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        from .auth import PRINCIPAL

        principal = request.get(PRINCIPAL)
        who = f"token={principal.token_id}" if principal is not None and principal.token_id is not None else "token=-"
        access.info("%s %s %d %.1fms source=%s %s", request.method, request.path, status,
                    (time.monotonic() - start) * 1000, request.remote or "-", who)


async def plain_server_header(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: no software versions in ``Server``."""
    response.headers["Server"] = "softswitch"
