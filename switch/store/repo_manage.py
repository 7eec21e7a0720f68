"""Changing the subscriber model one object at a time (the management API behind /api/v1).

Creating customers, adapters and lines goes through the importer
(``switch.store.importer``), so the API and ``softswitch import`` share one
validation; this module does what a file cannot say: change single fields,
swap an adapter's MAC, reset a line's password, delete, terminate.

Every change:

* runs in one transaction with its audit event (who, what, before → after);
* is refused as a whole when anything is wrong (``ManageError`` with the
  field and an HTTP status: 400/404/409/412), leaving the database as it was;
* honours optimistic concurrency: each object's ``etag`` is a hash of its
  representation, and a change given ``if_match`` that no longer matches is
  refused with 412 (another operator changed it in between).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from switch.store.address import Address, parse_address
from switch.store.adapter_models import MODELS
from switch.store.crypto import SecretBox
from switch.store.engine import SessionFactory, write_session
from switch.store.models import (
    Adapter,
    Binding,
    Customer,
    CustomerContact,
    CustomerKind,
    CustomerState,
    Language,
    Line,
    Number,
)
from switch.store.repo_adapters import format_mac, normalise_mac
from switch.store.repo_audit import add_audit_event
from switch.store.repo_lines import apply_secret

__all__ = [
    "ManageError",
    "Page",
    "adapter_repr",
    "customer_repr",
    "delete_adapter",
    "delete_line",
    "delete_number",
    "get_number",
    "list_numbers",
    "number_repr",
    "patch_number",
    "etag_of",
    "get_adapter",
    "get_customer",
    "get_line",
    "line_repr",
    "list_adapters",
    "list_customers",
    "list_lines",
    "patch_adapter",
    "patch_customer",
    "patch_line",
    "reset_line_password",
    "terminate_customer",
]

MAX_PAGE = 500


class ManageError(ValueError):
    """A refused change: ``status`` for the HTTP answer, ``field`` names what is wrong ('' = the object)."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.status = status
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


def etag_of(representation: dict[str, Any]) -> str:
    """A strong ETag: the hash of what the client sees (RFC 9110 §8.8.3)."""
    body = json.dumps(representation, sort_keys=True, separators=(",", ":"), default=str)
    return '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'


def _check_match(rep: dict[str, Any], if_match: str | None) -> None:
    if if_match is None:
        return
    tags = [t.strip() for t in if_match.split(",")]
    if "*" in tags or etag_of(rep) in tags:
        return
    raise ManageError(412, "", "the object changed since you read it (If-Match does not match its ETag): read it again")


def _escape_like(q: str) -> str:
    return q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _text(value: Any, field: str, max_len: int, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ManageError(400, field, "must be a string")
    text = str(value).strip()
    if not text and not allow_empty:
        raise ManageError(400, field, "must not be empty")
    if len(text) > max_len:
        raise ManageError(400, field, f"at most {max_len} characters")
    return text


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ManageError(400, field, "must be true or false")
    return value


def _choice(value: Any, field: str, enum_cls: Any) -> Any:
    try:
        return enum_cls(value)
    except ValueError:
        allowed = ", ".join(e.value for e in enum_cls)
        raise ManageError(400, field, f"must be one of {allowed}") from None


def _unknown(changes: dict[str, Any], allowed: tuple[str, ...]) -> None:
    extra = sorted(set(changes) - set(allowed))
    if extra:
        raise ManageError(400, extra[0], f"unknown or read-only field (changeable: {', '.join(allowed)})")


def _limits(limit: int, offset: int) -> tuple[int, int]:
    if not 1 <= limit <= MAX_PAGE:
        raise ManageError(400, "limit", f"must be 1..{MAX_PAGE}")
    if offset < 0:
        raise ManageError(400, "offset", "must be 0 or more")
    return limit, offset


# ------------------------------------------------------------------------- customers


def customer_repr(c: Customer) -> dict[str, Any]:
    return {
        "id": c.external_id,
        "name": c.name,
        "kind": str(c.kind),
        "language": str(c.language),
        "state": str(c.state),
        "credit_limit_ore": c.credit_limit_ore,
        "address": _address_repr(c),
    }


def _address_repr(c: Customer) -> dict[str, str] | None:
    if c.address_street is None or c.address_postcode is None or c.address_city is None:
        return None
    return Address(c.address_street, c.address_postcode, c.address_city).as_dict()


def _address_change(value: Any) -> Address | None:
    """``address``: ``{street, postcode, city}`` (all three) or null to remove it; the first problem is the answer."""
    if value is None:
        return None
    problems: list[tuple[str, str]] = []
    found = parse_address(value, "address", lambda where, msg: problems.append((where, msg)))
    if found is None:
        raise ManageError(400, problems[0][0], problems[0][1])
    return found


async def list_customers(sf: SessionFactory, *, q: str = "", state: str | None = None, limit: int = 50,
                         offset: int = 0) -> Page:
    limit, offset = _limits(limit, offset)
    stmt = select(Customer)
    if q:
        like = f"%{_escape_like(q.lower())}%"
        number_owner = select(Number.customer_id).where(Number.e164.like(f"%{_escape_like(q)}%", escape="\\"))
        stmt = stmt.where(or_(func.lower(Customer.external_id).like(like, escape="\\"),
                              func.lower(Customer.name).like(like, escape="\\"),
                              Customer.id.in_(number_owner)))
    if state is not None:
        stmt = stmt.where(Customer.state == _choice(state, "state", CustomerState))
    async with sf() as session:
        total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
        rows = (await session.execute(stmt.order_by(Customer.external_id).limit(limit).offset(offset))).scalars()
        return Page([customer_repr(c) for c in rows], int(total), limit, offset)


async def _customer(session: AsyncSession, ref: str) -> Customer:
    c = (await session.execute(select(Customer).where(Customer.external_id == ref))).scalar_one_or_none()
    if c is None:
        raise ManageError(404, "", f"no customer {ref!r}")
    return c


async def _contacts(session: AsyncSession, customer_id: int) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(CustomerContact).where(CustomerContact.customer_id == customer_id).order_by(CustomerContact.id))
    return [{"name": x.name, "email": x.email, "phone": x.phone, "primary": x.is_primary} for x in rows.scalars()]


async def _customer_full(session: AsyncSession, c: Customer) -> dict[str, Any]:
    return {**customer_repr(c), "contacts": await _contacts(session, c.id)}


async def get_customer(sf: SessionFactory, ref: str) -> dict[str, Any]:
    async with sf() as session:
        return await _customer_full(session, await _customer(session, ref))


_CUSTOMER_FIELDS = ("name", "kind", "language", "credit_limit_ore", "contacts", "address")
_CONTACT_FIELDS = {"name": 200, "email": 254, "phone": 32}


def _contact_rows(value: Any) -> list[dict[str, Any]]:
    """``contacts``: the whole list (at most 10), each ``{name, email, phone, primary}``; ``[]`` clears."""
    if not isinstance(value, list) or len(value) > 10:
        raise ManageError(400, "contacts", "must be a list of at most 10 contacts")
    out = []
    for i, item in enumerate(value):
        where = f"contacts[{i}]"
        if not isinstance(item, dict):
            raise ManageError(400, where, "must be an object with name, email, phone, primary")
        extra = sorted(set(item) - {*_CONTACT_FIELDS, "primary"})
        if extra:
            raise ManageError(400, f"{where}.{extra[0]}", "unknown field (name, email, phone, primary)")
        row: dict[str, Any] = {}
        for key, size in _CONTACT_FIELDS.items():
            v = item.get(key)
            row[key] = None if v is None else (_text(v, f"{where}.{key}", size, allow_empty=True) or None)
        if row["email"] is not None and "@" not in row["email"]:
            raise ManageError(400, f"{where}.email", "not an e-mail address")
        if not any(row.values()):
            raise ManageError(400, where, "give at least a name, an e-mail address or a phone number")
        row["primary"] = _bool(item.get("primary", i == 0), f"{where}.primary")
        out.append(row)
    return out


async def patch_customer(sf: SessionFactory, ref: str, changes: dict[str, Any], *, actor: str,
                         if_match: str | None = None) -> dict[str, Any]:
    _unknown(changes, _CUSTOMER_FIELDS)
    async with write_session(sf) as session:
        c = await _customer(session, ref)
        before = await _customer_full(session, c)
        _check_match(before, if_match)
        if str(c.state) == CustomerState.TERMINATED:
            raise ManageError(409, "state", "the customer is terminated")
        if "contacts" in changes:
            contacts = _contact_rows(changes["contacts"])
            await session.execute(delete(CustomerContact).where(CustomerContact.customer_id == c.id))
            for row in contacts:
                session.add(CustomerContact(customer_id=c.id, name=row["name"], email=row["email"],
                                            phone=row["phone"], is_primary=row["primary"]))
            await session.flush()
        if "name" in changes:
            c.name = _text(changes["name"], "name", 200)
        if "kind" in changes:
            c.kind = _choice(changes["kind"], "kind", CustomerKind)
        if "language" in changes:
            c.language = _choice(changes["language"], "language", Language)
        if "credit_limit_ore" in changes:
            v = changes["credit_limit_ore"]
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 100_000_000):
                raise ManageError(400, "credit_limit_ore", "must be null or an integer number of øre, 0..100000000")
            c.credit_limit_ore = v
        if "address" in changes:
            address = _address_change(changes["address"])
            c.address_street = None if address is None else address.street
            c.address_postcode = None if address is None else address.postcode
            c.address_city = None if address is None else address.city
        after = await _customer_full(session, c)
        if after != before:
            add_audit_event(session, actor=actor, action="customer.update", subject_type="customer", subject_id=ref,
                            customer_id=c.id, details={"before": before, "after": after})
        return after


async def terminate_customer(sf: SessionFactory, ref: str, *, actor: str, if_match: str | None = None
                             ) -> tuple[dict[str, Any], list[int]]:
    """End the contract: lines disabled, numbers freed for reuse, history kept. Returns (repr, line ids)."""
    async with write_session(sf) as session:
        c = await _customer(session, ref)
        before = await _customer_full(session, c)
        _check_match(before, if_match)
        if str(c.state) == CustomerState.TERMINATED:
            raise ManageError(409, "state", "already terminated")
        lines = list((await session.execute(select(Line).where(Line.customer_id == c.id))).scalars())
        freed: list[str] = []
        for line in lines:
            if line.number_id is not None:
                n = await session.get(Number, line.number_id)
                if n is not None:
                    freed.append(n.e164)
            line.enabled = False
            line.number_id = None
            # The SIP user name is unique too: free it for whoever gets the number next.
            line.auth_user = f"terminated-{line.id}-{line.auth_user}"[:64]
        await session.execute(update(Number).where(Number.customer_id == c.id).values(customer_id=None))
        ids = [li.id for li in lines]
        if ids:
            await session.execute(delete(Binding).where(Binding.line_id.in_(ids)))
        c.state = CustomerState.TERMINATED
        add_audit_event(session, actor=actor, action="customer.terminate", subject_type="customer", subject_id=ref,
                        customer_id=c.id, details={"numbers_freed": freed, "lines_disabled": len(lines)})
        return await _customer_full(session, c), ids


# ------------------------------------------------------------------------- adapters


def adapter_repr(a: Adapter, customer_ref: str | None, lines: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    rep: dict[str, Any] = {
        "mac": format_mac(a.mac),
        "model": a.model,
        "vendor": a.vendor,
        "description": a.description,
        "customer": customer_ref,
        "firmware": a.firmware_seen,
    }
    if lines is not None:
        rep["lines"] = lines
    return rep


async def _adapter(session: AsyncSession, mac: str) -> tuple[Adapter, str | None]:
    try:
        key = normalise_mac(mac)
    except ValueError:
        raise ManageError(400, "mac", f"not a MAC address: {mac!r}") from None
    row = (await session.execute(
        select(Adapter, Customer.external_id).outerjoin(Customer, Customer.id == Adapter.customer_id)
        .where(Adapter.mac == key)
    )).first()
    if row is None:
        raise ManageError(404, "", f"no adapter {format_mac(key)}")
    return row[0], row[1]


async def _adapter_lines(session: AsyncSession, adapter_id: int) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(Line.port, Number.e164).outerjoin(Number, Number.id == Line.number_id)
        .where(Line.adapter_id == adapter_id).order_by(Line.port)
    )
    return [{"port": p, "number": n} for p, n in rows]


async def list_adapters(sf: SessionFactory, *, q: str = "", customer: str | None = None, limit: int = 50,
                        offset: int = 0) -> Page:
    limit, offset = _limits(limit, offset)
    stmt = select(Adapter, Customer.external_id).outerjoin(Customer, Customer.id == Adapter.customer_id)
    if q:
        hexq = "".join(ch for ch in q.lower() if ch in "0123456789abcdef")
        conds = [func.lower(Adapter.model) == q.lower()]
        if hexq:
            conds.append(Adapter.mac.like(f"%{hexq}%"))
        stmt = stmt.where(or_(*conds))
    if customer is not None:
        stmt = stmt.where(Customer.external_id == customer)
    async with sf() as session:
        total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
        rows = (await session.execute(stmt.order_by(Adapter.mac).limit(limit).offset(offset))).all()
        return Page([adapter_repr(a, ref) for a, ref in rows], int(total), limit, offset)


async def get_adapter(sf: SessionFactory, mac: str) -> dict[str, Any]:
    async with sf() as session:
        a, ref = await _adapter(session, mac)
        return adapter_repr(a, ref, await _adapter_lines(session, a.id))


_ADAPTER_FIELDS = ("model", "description", "customer", "mac")


async def patch_adapter(sf: SessionFactory, mac: str, changes: dict[str, Any], *, actor: str,
                        if_match: str | None = None) -> tuple[dict[str, Any], list[int]]:
    """Change model, description, owner, or the MAC itself (a swapped unit keeps its lines).

    Returns the new representation and the ids of the adapter's lines (their
    registrations end with the old unit, so the caller drops their bindings on a MAC swap).
    """
    _unknown(changes, _ADAPTER_FIELDS)
    async with write_session(sf) as session:
        a, ref = await _adapter(session, mac)
        before = adapter_repr(a, ref, await _adapter_lines(session, a.id))
        _check_match(before, if_match)
        if "model" in changes:
            model = _text(changes["model"], "model", 32).lower()
            info = MODELS.get(model)
            if info is None:
                raise ManageError(400, "model", f"unknown model; known: {', '.join(sorted(MODELS))}")
            ports = max((li["port"] for li in before["lines"]), default=0)
            if ports > info.ports:
                raise ManageError(409, "model", f"{model} has {info.ports} port(s) but line port {ports} is in use")
            a.model, a.vendor = model, info.vendor_name
        if "description" in changes:
            a.description = None if changes["description"] is None else _text(changes["description"], "description",
                                                                                200, allow_empty=True)
        if "customer" in changes:
            target = await _customer(session, _text(changes["customer"], "customer", 64))
            owner = await session.execute(select(func.count()).select_from(Line).where(
                Line.adapter_id == a.id, Line.customer_id != target.id))
            if owner.scalar_one():
                raise ManageError(409, "customer", "the adapter carries lines of another customer")
            a.customer_id, ref = target.id, target.external_id
        swapped = False
        if "mac" in changes:
            try:
                new_mac = normalise_mac(_text(changes["mac"], "mac", 32))
            except ValueError:
                raise ManageError(400, "mac", f"not a MAC address: {changes['mac']!r}") from None
            if new_mac != a.mac:
                taken = (await session.execute(select(Adapter.id).where(Adapter.mac == new_mac))).first()
                if taken is not None:
                    raise ManageError(409, "mac", f"adapter {format_mac(new_mac)} exists already")
                a.mac, swapped = new_mac, True
        line_ids = [i for (i,) in await session.execute(select(Line.id).where(Line.adapter_id == a.id))]
        if swapped and line_ids:
            await session.execute(delete(Binding).where(Binding.line_id.in_(line_ids)))
        after = adapter_repr(a, ref, before["lines"])
        if after != before:
            add_audit_event(session, actor=actor, action="adapter.swap" if swapped else "adapter.update",
                            subject_type="adapter", subject_id=a.mac, customer_id=a.customer_id,
                            details={"before": before, "after": after})
        return after, (line_ids if swapped else [])


async def delete_adapter(sf: SessionFactory, mac: str, *, actor: str, if_match: str | None = None) -> None:
    async with write_session(sf) as session:
        a, ref = await _adapter(session, mac)
        lines = await _adapter_lines(session, a.id)
        _check_match(adapter_repr(a, ref, lines), if_match)
        if lines:
            raise ManageError(409, "lines", "the adapter still carries lines: move or delete them first")
        add_audit_event(session, actor=actor, action="adapter.delete", subject_type="adapter", subject_id=a.mac,
                        customer_id=a.customer_id, details={"model": a.model})
        await session.delete(a)


# ------------------------------------------------------------------------- lines


def line_repr(line: Line, e164: str | None, unlisted: bool | None, mac: str, customer_ref: str) -> dict[str, Any]:
    return {
        "number": e164,
        "customer": customer_ref,
        "adapter": format_mac(mac),
        "port": line.port,
        "auth_user": line.auth_user,
        "display_name": line.display_name,
        "language": str(line.language),
        "alarm": line.alarm,
        "unlisted": bool(unlisted),
        "enabled": line.enabled,
    }


def _line_select() -> Any:
    return (
        select(Line, Number, Adapter.mac, Customer.external_id)
        .outerjoin(Number, Number.id == Line.number_id)
        .join(Adapter, Adapter.id == Line.adapter_id)
        .join(Customer, Customer.id == Line.customer_id)
    )


def _e164(number: str) -> str:
    n = number.strip()
    if n.isdigit() and len(n) == 8:
        return "+47" + n
    return n


async def _line(session: AsyncSession, number: str) -> tuple[Line, Number, str, str]:
    row = (await session.execute(_line_select().where(Number.e164 == _e164(number)))).first()
    if row is None:
        raise ManageError(404, "", f"no line with number {number!r}")
    return row[0], row[1], row[2], row[3]


async def list_lines(sf: SessionFactory, *, q: str = "", customer: str | None = None, limit: int = 50,
                     offset: int = 0) -> Page:
    limit, offset = _limits(limit, offset)
    stmt = _line_select()
    if q:
        digits = "".join(ch for ch in q if ch.isdigit() or ch == "+")
        conds = [Line.auth_user == q, func.lower(Line.display_name).like(f"%{_escape_like(q.lower())}%", escape="\\")]
        if digits:
            conds.append(Number.e164.like(f"%{_escape_like(digits)}%", escape="\\"))
        stmt = stmt.where(or_(*conds))
    if customer is not None:
        stmt = stmt.where(Customer.external_id == customer)
    async with sf() as session:
        total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
        rows = (await session.execute(stmt.order_by(Number.e164).limit(limit).offset(offset))).all()
        return Page([line_repr(li, n.e164 if n else None, n.unlisted if n else None, mac, ref)
                     for li, n, mac, ref in rows], int(total), limit, offset)


async def get_line(sf: SessionFactory, number: str) -> dict[str, Any]:
    async with sf() as session:
        li, n, mac, ref = await _line(session, number)
        return line_repr(li, n.e164, n.unlisted, mac, ref)


_LINE_FIELDS = ("display_name", "language", "alarm", "unlisted", "enabled")


async def patch_line(sf: SessionFactory, number: str, changes: dict[str, Any], *, actor: str,
                     if_match: str | None = None) -> tuple[dict[str, Any], int]:
    _unknown(changes, _LINE_FIELDS)
    async with write_session(sf) as session:
        li, n, mac, ref = await _line(session, number)
        before = line_repr(li, n.e164, n.unlisted, mac, ref)
        _check_match(before, if_match)
        if "display_name" in changes:
            v = changes["display_name"]
            li.display_name = None if v is None else _text(v, "display_name", 100, allow_empty=True) or None
        if "language" in changes:
            li.language = _choice(changes["language"], "language", Language)
        if "alarm" in changes:
            li.alarm = _bool(changes["alarm"], "alarm")
        if "unlisted" in changes:
            n.unlisted = _bool(changes["unlisted"], "unlisted")
        if "enabled" in changes:
            li.enabled = _bool(changes["enabled"], "enabled")
            if not li.enabled:
                await session.execute(delete(Binding).where(Binding.line_id == li.id))
        after = line_repr(li, n.e164, n.unlisted, mac, ref)
        if after != before:
            add_audit_event(session, actor=actor, action="line.update", subject_type="line", subject_id=n.e164,
                            customer_id=li.customer_id, details={"before": before, "after": after})
        return after, li.id


async def reset_line_password(sf: SessionFactory, number: str, box: SecretBox, realm: str, *, actor: str
                              ) -> tuple[str, int]:
    """A new SIP password (returned once; the adapter gets it with its next config fetch)."""
    password = secrets.token_urlsafe(12)
    async with write_session(sf) as session:
        li, n, _mac, _ref = await _line(session, number)
        apply_secret(li, password, box, realm)
        add_audit_event(session, actor=actor, action="line.password_reset", subject_type="line", subject_id=n.e164,
                        customer_id=li.customer_id)
        return password, li.id


async def delete_line(sf: SessionFactory, number: str, *, actor: str, if_match: str | None = None) -> int:
    """Delete the line and free its number; its call records stay (they copy the numbers)."""
    async with write_session(sf) as session:
        li, n, mac, ref = await _line(session, number)
        _check_match(line_repr(li, n.e164, n.unlisted, mac, ref), if_match)
        line_id = li.id
        add_audit_event(session, actor=actor, action="line.delete", subject_type="line", subject_id=n.e164,
                        customer_id=li.customer_id, details={"adapter": format_mac(mac), "port": li.port})
        await session.delete(li)
        await session.flush()
        n.customer_id = None
        return line_id


# ------------------------------------------------------------------------- numbers


def number_repr(n: Number, customer_ref: str | None, line_number: str | None) -> dict[str, Any]:
    return {"number": n.e164, "customer": customer_ref, "in_use": line_number is not None, "unlisted": n.unlisted}


def _number_select() -> Any:
    return (
        select(Number, Customer.external_id, Line.id)
        .outerjoin(Customer, Customer.id == Number.customer_id)
        .outerjoin(Line, Line.number_id == Number.id)
    )


async def list_numbers(sf: SessionFactory, *, q: str = "", state: str | None = None, limit: int = 50,
                       offset: int = 0) -> Page:
    """The operator's numbers: ``state`` ``free`` (on no line), ``assigned`` (on a line) or all."""
    limit, offset = _limits(limit, offset)
    stmt = _number_select()
    if q:
        digits = "".join(ch for ch in q if ch.isdigit() or ch == "+")
        stmt = stmt.where(Number.e164.like(f"%{_escape_like(digits)}%", escape="\\"))
    if state == "free":
        stmt = stmt.where(Line.id.is_(None))
    elif state == "assigned":
        stmt = stmt.where(Line.id.is_not(None))
    elif state is not None:
        raise ManageError(400, "state", "must be free or assigned")
    async with sf() as session:
        total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
        rows = (await session.execute(stmt.order_by(Number.e164).limit(limit).offset(offset))).all()
        return Page([number_repr(n, ref, n.e164 if lid else None) for n, ref, lid in rows], int(total), limit, offset)


async def _number(session: AsyncSession, number: str) -> tuple[Number, str | None, int | None]:
    row = (await session.execute(_number_select().where(Number.e164 == _e164(number)))).first()
    if row is None:
        raise ManageError(404, "", f"no number {number!r}")
    return row[0], row[1], row[2]


async def get_number(sf: SessionFactory, number: str) -> dict[str, Any]:
    async with sf() as session:
        n, ref, lid = await _number(session, number)
        return number_repr(n, ref, n.e164 if lid else None)


async def patch_number(sf: SessionFactory, number: str, changes: dict[str, Any], *, actor: str,
                       if_match: str | None = None) -> dict[str, Any]:
    """``unlisted`` (kept out of the directory export) is what can change on a number itself."""
    _unknown(changes, ("unlisted",))
    async with write_session(sf) as session:
        n, ref, lid = await _number(session, number)
        before = number_repr(n, ref, n.e164 if lid else None)
        _check_match(before, if_match)
        if "unlisted" in changes:
            n.unlisted = _bool(changes["unlisted"], "unlisted")
        after = number_repr(n, ref, n.e164 if lid else None)
        if after != before:
            add_audit_event(session, actor=actor, action="number.update", subject_type="number", subject_id=n.e164,
                            customer_id=n.customer_id, details={"before": before, "after": after})
        return after


async def delete_number(sf: SessionFactory, number: str, *, actor: str, if_match: str | None = None) -> None:
    """Give a free number back (not one a line uses: delete or renumber the line first)."""
    async with write_session(sf) as session:
        n, ref, lid = await _number(session, number)
        _check_match(number_repr(n, ref, n.e164 if lid else None), if_match)
        if lid is not None:
            raise ManageError(409, "number", "a line uses this number: delete or renumber the line first")
        add_audit_event(session, actor=actor, action="number.delete", subject_type="number", subject_id=n.e164,
                        customer_id=n.customer_id)
        await session.delete(n)
