"""The string limit on every text field of every web form, before any handler sees it.

The API refused strings over 1,000 characters but the web pages stored what they
were given (a 1 MB customer name through the customer form). This middleware
is the same floor for ``/ui/`` and ``/min-side/``: a field over its limit gets a
400 page naming the field, and the handler (hence the database) never sees the
post. Handlers keep their own tighter checks. Uploaded files are not text fields:
the import checks each field inside them (``switch.store.import_validation``).
"""

from __future__ import annotations

from aiohttp import web

from ..guards import MAX_IMPORT, MAX_STRING, Handler
from .i18n import translate
from .web import language, render

__all__ = ["LONG_FIELDS", "form_limits"]

FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
#: (path, field) that may be longer: the import page's text box holds a whole customer file
LONG_FIELDS: dict[tuple[str, str], int] = {("/ui/import", "text"): MAX_IMPORT}


@web.middleware
async def form_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "POST" and request.path.startswith(("/ui/", "/min-side/")) and request.content_type in FORM_TYPES:
        form = await request.post()  # cached: the handler's own request.post() gets the same
        for name, value in form.items():
            limit = LONG_FIELDS.get((request.path, name), MAX_STRING)
            if isinstance(value, str) and len(value) > limit:
                audience = "customer" if request.path.startswith("/min-side/") else "operator"
                message = translate(language(request), "field_too_long", field=name[:60], limit=limit)
                return render(request, "error.html", audience=audience, status=400, message=message)
    return await handler(request)
