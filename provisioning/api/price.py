"""The price look-up for support staff: what would a call to this number cost this customer?

``GET /api/v1/tariffs/price`` and the operator UI's price form (provisioning/ui/operator.py) both
call ``look_up``: one reading of the parameters, and the price comes from
``RatingService.quote``, i.e. ``Rater.rate``, the code that prices the call records — never a
second implementation of the tariff.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from aiohttp import web

from switch.services.numbering import NumberClass, normalise
from switch.services.rating.service import RatingService
from switch.store.engine import SessionFactory
from switch.store.repo_manage import ManageError, get_customer

from ..auth import STAFF_READ, require
from ..errors import problem_details
from ..keys import DEPS

__all__ = ["PriceProblem", "look_up", "routes"]

routes = web.RouteTableDef()

_KINDS = ("private", "business")
_MAX_SECONDS = 86_400


class PriceProblem(ValueError):
    """A look-up that cannot be answered: ``status`` and the ``field`` at fault ('' = none)."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


async def look_up(rating: RatingService | None, sf: SessionFactory, params: Mapping[str, str],
                  now: datetime | None = None) -> dict[str, object]:
    """``number`` (required), ``seconds`` (default 60), ``customer`` or ``kind`` (default private),
    ``at`` (ISO 8601 with a zone, default now) → the answer as JSON-ready data."""
    if rating is None:
        raise PriceProblem(503, "", "rating is not running in this process: no tariffs to look up")
    raw_number = params.get("number", "").strip()
    if not raw_number:
        raise PriceProblem(400, "number", "number: required (the number dialled, e.g. 22000002, +46812345678 or 1881)")
    n = normalise(raw_number[:64])
    if n.number_class is NumberClass.INVALID:
        raise PriceProblem(400, "number", f"number: {raw_number[:64]!r} is not a number the numbering plan knows")
    raw_seconds = params.get("seconds", "60").strip()
    if not raw_seconds.isascii() or not raw_seconds.isdigit() or int(raw_seconds) > _MAX_SECONDS:
        raise PriceProblem(400, "seconds", f"seconds: a whole number of seconds from 0 to {_MAX_SECONDS}, "
                           f"got {raw_seconds[:20]!r}")
    seconds = int(raw_seconds)
    customer = params.get("customer", "").strip() or None
    raw_kind = params.get("kind", "").strip() or None
    if customer is not None and raw_kind is not None:
        raise PriceProblem(400, "kind", "kind: give a customer or a kind, not both (the customer has its own kind)")
    if raw_kind is not None and raw_kind not in _KINDS:
        raise PriceProblem(400, "kind", f"kind: private or business, got {raw_kind[:20]!r}")
    kind = raw_kind or "private"
    if customer is not None:
        try:
            kind = str((await get_customer(sf, customer[:64]))["kind"])
        except ManageError:
            raise PriceProblem(404, "customer", f"customer: no customer {customer[:64]!r}") from None
    raw_at = params.get("at", "").strip()
    if raw_at:
        try:
            at = datetime.fromisoformat(raw_at)
        except ValueError:
            raise PriceProblem(400, "at", f"at: an ISO 8601 time such as 2026-11-10T12:00:00+01:00, "
                               f"got {raw_at[:40]!r}") from None
        if at.tzinfo is None:
            raise PriceProblem(400, "at", "at: give the time zone too (e.g. +01:00 or Z)")
    else:
        at = now or datetime.now(UTC)
    number = n.e164 or n.national or raw_number
    try:
        q = rating.quote(number, n.number_class.value, seconds, kind, at.timestamp())
    except LookupError as err:
        raise PriceProblem(404, "at" if "valid" in str(err) else "number", str(err)) from None
    price = q.rating.price
    return {
        "number": number,
        "number_class": n.number_class.value,
        "at": at.astimezone(UTC).isoformat(timespec="seconds"),
        "customer": customer,
        "kind": kind,
        "tariff_version": q.tariff_version,
        "tariff_name": q.tariff_name,
        "tariff_valid_from": q.valid_from.astimezone(UTC).isoformat(timespec="seconds"),
        "zone": q.rating.zone,
        "zone_name": q.zone_name,
        "prefix": q.prefix,
        "start_ore": price.start_ore,
        "per_minute_ore": price.per_minute_ore,
        "included": price.start_ore == 0 and price.per_minute_ore == 0,
        "seconds": seconds,
        "price_ore": q.rating.price_ore,
    }


@routes.get("/api/v1/tariffs/price")
@require(*STAFF_READ)
async def tariff_price(request: web.Request) -> web.StreamResponse:
    """What a call would cost: tariff version, matched entry and zone, start fee, per-minute price, the price."""
    deps = request.app[DEPS]
    try:
        return web.json_response(await look_up(deps.rating, deps.session_factory, request.query))
    except PriceProblem as err:
        return problem_details(err.status, err.message, field=err.field or None)
