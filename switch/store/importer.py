"""``softswitch import FILE``: upsert customers, adapters and lines from JSON or YAML.

The same file may carry ``trunks`` and ``routes`` sections; those are validated and
applied by ``repo_trunks.import_routing`` in the same transaction.

Two phases, so that a bad file changes nothing:

1. ``import_validation.load_import_file`` / ``parse_import_document`` check the
   document on its own (types, allowed values, duplicates inside the file) and
   return an ``ImportDoc`` with normalised values (E.164 numbers, 12-hex MACs,
   lower-case models). This module re-exports both and ``ImportValidationError``,
   so the import command needs one module.
2. ``import_document`` (here) opens ONE write transaction, checks the document against the
   database (a number or MAC that belongs to someone else, an auth user in use),
   and only then writes. Any problem raises ``ImportValidationError`` carrying every
   issue found, each with a path such as
   ``customers[0].adapters[1].lines[0].port: must be 1 or 2``.

Semantics (documented for operators in examples/customers.yaml):

* Upsert by business key: customer ``id``, adapter ``mac``, line ``(mac, port)``.
  Nothing is ever deleted; entries absent from the file are left alone.
* An optional field that is absent leaves the stored value unchanged (new rows get
  the default). Importing the same file twice changes nothing the second time.
* Numbers: 8-digit national → ``+47XXXXXXXX``; E.164 (``+…`` or ``00…``) accepted.
  A number may move between lines listed in the same file (even swap).
* The SIP auth user defaults to the line's number (national form for +47).
* ``password`` may be omitted: a new line then gets a random one (the adapter
  receives it through provisioning); an existing line keeps its own.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast

from sqlalchemy import Table, delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.sql import Select

from switch.store.adapter_models import MODELS
from switch.store.crypto import CTX_ADAPTER_SECRET, CTX_LINE_SECRET, CTX_TRUNK_PASSWORD, SecretBox
from switch.store.engine import SessionFactory, write_session
from switch.store.import_validation import (
    AdapterSpec,
    CustomerSpec,
    ImportDoc,
    ImportIssue,
    ImportValidationError,
    LineSpec,
    issue_order,
    load_import_file,
    parse_import_document,
)
from switch.store.models import (
    ForwardKind,
    Adapter,
    Customer,
    CustomerContact,
    CustomerKind,
    Language,
    Line,
    Number,
    Route,
    RouteTrunk,
    Trunk,
    UnclaimedAdapter,
)
from switch.store.repo_adapters import format_mac, new_provisioning_secret
from switch.store.repo_audit import add_audit_event
from switch.store.import_policy import apply_customer_policy, apply_line_policy
from switch.store.repo_lines import apply_secret, default_auth_user, normalise_number
from switch.store.repo_trunks import RoutingImportError, import_routing

__all__ = [
    "ImportReport",
    "ImportValidationError",
    "import_document",
    "load_import_file",
    "parse_import_document",
]

# --------------------------------------------------------------------------- results


ENTITIES = ("customers", "adapters", "lines", "numbers")


@dataclass(frozen=True, slots=True)
class ImportReport:
    """Counts per entity (``customers``, ``adapters``, ``lines``, ``numbers``)."""

    created: Mapping[str, int]
    updated: Mapping[str, int]
    unchanged: Mapping[str, int]
    #: Summary of the trunks/routes section (``repo_trunks``), "" when there was none.
    routing: str = ""

    @property
    def total_created(self) -> int:
        return sum(self.created.values())

    @property
    def total_updated(self) -> int:
        return sum(self.updated.values())

    @property
    def changed(self) -> bool:
        return self.total_created + self.total_updated > 0

    def summary(self) -> str:
        parts = [
            f"{e}: {self.created.get(e, 0)} created, {self.updated.get(e, 0)} updated, "
            f"{self.unchanged.get(e, 0)} unchanged"
            for e in ENTITIES
        ]
        return "; ".join([*parts, self.routing] if self.routing else parts)


# ------------------------------------------------------------------- phase 2: write


_IN_CHUNK = 900
#: pg_advisory_xact_lock key serialising imports (distinct from the migration lock).
_PG_IMPORT_LOCK = 0x5_0F75_1A90


async def _fetch_in(
    session: AsyncSession, build: Callable[[list[Any]], Select[Any]], values: Iterable[Any]
) -> list[Any]:
    """Run ``build(chunk)`` for chunks of ``values``: IN lists stay under bind limits."""
    vals = sorted(set(values))
    out: list[Any] = []
    for i in range(0, len(vals), _IN_CHUNK):
        out.extend((await session.execute(build(vals[i : i + _IN_CHUNK]))).scalars().all())
    return out


def _set(obj: Any, attr: str, value: Any) -> bool:
    """Assign if different; True when it changed something."""
    if getattr(obj, attr) == value:
        return False
    setattr(obj, attr, value)
    return True


@dataclass(slots=True)
class _Counts:
    created: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENTITIES, 0))
    updated: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENTITIES, 0))
    unchanged: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENTITIES, 0))

    def add(self, entity: str, *, created: bool = False, changed: bool = False) -> None:
        bucket = self.created if created else self.updated if changed else self.unchanged
        bucket[entity] += 1

    def report(self) -> ImportReport:
        return ImportReport(created=dict(self.created), updated=dict(self.updated), unchanged=dict(self.unchanged))


@dataclass(slots=True)
class _World:
    """The rows the document touches, loaded once inside the write transaction."""

    customers: dict[str, Customer]
    customer_refs: dict[int, str]
    adapters: dict[str, Adapter]
    adapter_macs: dict[int, str]
    lines_by_key: dict[tuple[str, int], Line]
    lines_by_number_id: dict[int, Line]
    lines_by_auth: dict[str, Line]
    numbers: dict[str, Number]
    #: E.164 of every number held by a loaded line (the line's current number).
    number_e164: dict[int, str]

    def key_of(self, line: Line) -> tuple[str, int]:
        return (self.adapter_macs[line.adapter_id], line.port)

    def describe(self, line: Line) -> str:
        mac, port = self.key_of(line)
        return f"line {format_mac(mac)} port {port} of customer {self.customer_refs.get(line.customer_id, '?')}"


async def _load_world(session: AsyncSession, doc: ImportDoc) -> _World:
    adapters_in = [a for c in doc.customers for a in c.adapters]
    lines_in = [ln for a in adapters_in for ln in a.lines]
    customers = await _fetch_in(
        session,
        lambda ids: select(Customer).where(Customer.external_id.in_(ids)).options(selectinload(Customer.contacts)),
        (c.external_id for c in doc.customers),
    )
    adapters = await _fetch_in(session, lambda m: select(Adapter).where(Adapter.mac.in_(m)), (a.mac for a in adapters_in))
    numbers = await _fetch_in(session, lambda n: select(Number).where(Number.e164.in_(n)), (ln.number for ln in lines_in))
    lines: dict[int, Line] = {}
    for line in await _fetch_in(
        session, lambda ids: select(Line).where(Line.adapter_id.in_(ids)), (a.id for a in adapters)
    ):
        lines[line.id] = line
    for line in await _fetch_in(
        session, lambda ids: select(Line).where(Line.number_id.in_(ids)), (n.id for n in numbers)
    ):
        lines[line.id] = line
    # Candidate auth users: explicit ones, and the defaults of the numbers in the file.
    auth_candidates = {ln.auth_user for ln in lines_in if ln.auth_user} | {
        default_auth_user(ln.number) for ln in lines_in
    }
    for line in await _fetch_in(session, lambda u: select(Line).where(Line.auth_user.in_(u)), auth_candidates):
        lines[line.id] = line
    number_e164 = {n.id: n.e164 for n in numbers}
    held = {ln.number_id for ln in lines.values() if ln.number_id is not None} - number_e164.keys()
    for n in await _fetch_in(session, lambda ids: select(Number).where(Number.id.in_(ids)), held):
        number_e164[n.id] = n.e164
    # Adapters and customers of lines found through numbers / auth users, for keys and messages.
    adapter_macs = {a.id: a.mac for a in adapters}
    missing_adapters = {ln.adapter_id for ln in lines.values()} - adapter_macs.keys()
    for adapter in await _fetch_in(session, lambda ids: select(Adapter).where(Adapter.id.in_(ids)), missing_adapters):
        adapter_macs[adapter.id] = adapter.mac
    owner_ids = (
        {a.customer_id for a in adapters if a.customer_id is not None}
        | {n.customer_id for n in numbers if n.customer_id is not None}
        | {ln.customer_id for ln in lines.values()}
    )
    customer_refs = {c.id: c.external_id for c in customers}
    for c in await _fetch_in(
        session, lambda ids: select(Customer).where(Customer.id.in_(ids)), owner_ids - customer_refs.keys()
    ):
        customer_refs[c.id] = c.external_id
    return _World(
        customers={c.external_id: c for c in customers},
        customer_refs=customer_refs,
        adapters={a.mac: a for a in adapters},
        adapter_macs=adapter_macs,
        lines_by_key={(adapter_macs[ln.adapter_id], ln.port): ln for ln in lines.values()},
        lines_by_number_id={ln.number_id: ln for ln in lines.values() if ln.number_id is not None},
        lines_by_auth={ln.auth_user: ln for ln in lines.values()},
        numbers={n.e164: n for n in numbers},
        number_e164=number_e164,
    )


def _final_auth_user(spec: LineSpec, existing: Line | None, old_number: str | None) -> str:
    """Explicit value; else a new line gets the default, and an existing line keeps
    its own unless it was the default of its old number (then it follows the number)."""
    if spec.auth_user is not None:
        return spec.auth_user
    if existing is None or (old_number is not None and existing.auth_user == default_auth_user(old_number)):
        return default_auth_user(spec.number)
    return existing.auth_user


def _check_against_db(doc: ImportDoc, world: _World) -> tuple[list[ImportIssue], dict[tuple[str, int], str]]:
    """Conflicts with rows outside the file. Returns issues and each target line's final auth user."""
    issues: list[ImportIssue] = []
    targets = {(a.mac, ln.port) for c in doc.customers for a in c.adapters for ln in a.lines}
    final_auth: dict[tuple[str, int], str] = {}
    auth_seen: dict[str, str] = {}
    for cs in doc.customers:
        customer = world.customers.get(cs.external_id)
        customer_id = customer.id if customer else None
        for a in cs.adapters:
            adapter = world.adapters.get(a.mac)
            if adapter is not None and adapter.customer_id is not None and adapter.customer_id != customer_id:
                issues.append(
                    ImportIssue(
                        f"{a.path}.mac",
                        f"adapter {format_mac(a.mac)} belongs to customer {world.customer_refs[adapter.customer_id]}",
                    )
                )
            for ls in a.lines:
                key = (a.mac, ls.port)
                existing = world.lines_by_key.get(key)
                number = world.numbers.get(ls.number)
                if number is not None and number.customer_id is not None and number.customer_id != customer_id:
                    issues.append(
                        ImportIssue(
                            f"{ls.path}.number",
                            f"{ls.number} belongs to customer {world.customer_refs[number.customer_id]}",
                        )
                    )
                elif (
                    number is not None
                    and (owner := world.lines_by_number_id.get(number.id)) is not None
                    and world.key_of(owner) not in (key, *targets)
                ):
                    issues.append(
                        ImportIssue(f"{ls.path}.number", f"{ls.number} is already used by {world.describe(owner)}")
                    )
                old_number = world.number_e164.get(existing.number_id) if existing and existing.number_id else None
                auth = _final_auth_user(ls, existing, old_number)
                final_auth[key] = auth
                if auth in auth_seen:
                    issues.append(
                        ImportIssue(f"{ls.path}.auth_user", f"duplicate auth user {auth!r} (also at {auth_seen[auth]})")
                    )
                    continue
                auth_seen[auth] = f"{ls.path}.auth_user"
                holder = world.lines_by_auth.get(auth)
                if holder is not None and world.key_of(holder) != key and world.key_of(holder) not in targets:
                    how = "" if ls.auth_user is not None else " (the default, from the number)"
                    issues.append(
                        ImportIssue(
                            f"{ls.path}.auth_user", f"auth user {auth!r}{how} is already used by {world.describe(holder)}"
                        )
                    )
    return issues, final_auth


async def import_document(
    session_factory: SessionFactory,
    doc: ImportDoc,
    secret_box: SecretBox,
    realm: str,
    *,
    actor: str = "import",
) -> ImportReport:
    """Upsert the document in one transaction; raises ImportValidationError (and
    writes nothing) if it conflicts with the database."""
    async with write_session(session_factory) as session:
        if session.get_bind().dialect.name == "postgresql":
            # Two imports at once would each pass the checks and then collide on a
            # unique key; take turns instead (SQLite's BEGIN IMMEDIATE already does).
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_IMPORT_LOCK})
        world = await _load_world(session, doc)
        issues, final_auth = _check_against_db(doc, world)
        if issues:
            raise ImportValidationError(sorted(issues, key=issue_order))
        counts = _Counts()
        await _apply(session, doc, world, final_auth, secret_box, realm, counts)
        report = counts.report()
        routing_changed = False
        if doc.routing:
            before = await _routing_state(session, secret_box)
            try:
                routing = await import_routing(session, dict(doc.routing), secret_box)
            except RoutingImportError as exc:
                raise ImportValidationError([ImportIssue("", str(exc))]) from exc
            routing_changed = await _routing_state(session, secret_box) != before
            report = replace(report, routing=str(routing))
        if report.changed or routing_changed:
            add_audit_event(
                session,
                actor=actor,
                action="import",
                subject_type="import",
                subject_id=doc.source[:64] or "-",
                details={"created": report.created, "updated": report.updated, "routing": report.routing},
            )
        return report


async def _routing_state(session: AsyncSession, box: SecretBox) -> list[tuple[Any, ...]]:
    """Trunks and routes as comparable rows (passwords decrypted: re-sealing the same
    password gives new ciphertext), to audit a routing import only if it changed
    something. Column selects, not entities: ``import_routing`` must find the
    identity map as it left it."""
    await session.flush()
    trunk_cols = [c for c in Trunk.__table__.c if c.name != "password_enc"]
    state: list[tuple[Any, ...]] = []
    for row in await session.execute(select(*trunk_cols, Trunk.password_enc).order_by(Trunk.id)):
        *cols, enc = row
        state.append((*cols, box.decrypt(enc, context=CTX_TRUNK_PASSWORD) if enc else None))
    for table in (cast(Table, Route.__table__), cast(Table, RouteTrunk.__table__)):
        state.extend(tuple(r) for r in await session.execute(select(table).order_by(*table.primary_key.columns)))
    return state


async def _apply(
    session: AsyncSession,
    doc: ImportDoc,
    world: _World,
    final_auth: dict[tuple[str, int], str],
    box: SecretBox,
    realm: str,
    counts: _Counts,
) -> None:
    customers: dict[str, Customer] = {}
    for cs in doc.customers:
        customers[cs.external_id] = _upsert_customer(session, cs, world, counts)
    await session.flush()

    adapters: dict[str, Adapter] = {}
    for cs in doc.customers:
        for a in cs.adapters:
            adapters[a.mac] = _upsert_adapter(session, a, customers[cs.external_id], world, box, counts)
    await session.flush()
    if adapters:  # they are known now
        macs = sorted(adapters)
        for i in range(0, len(macs), _IN_CHUNK):  # under the drivers' bind limits (asyncpg: 32,767)
            await session.execute(delete(UnclaimedAdapter).where(UnclaimedAdapter.mac.in_(macs[i : i + _IN_CHUNK])))

    numbers: dict[str, Number] = {}
    for cs in doc.customers:
        customer = customers[cs.external_id]
        for a in cs.adapters:
            for ls in a.lines:
                numbers[ls.number] = _upsert_number(session, ls, customer, world, counts)
    await session.flush()

    # Numbers and auth users may move between lines of the file (even swap), and both
    # are UNIQUE. Park every line whose number or auth user changes first, then set
    # the final values: no intermediate state can collide.
    spec_numbers = {(a.mac, ls.port): ls.number for c in doc.customers for a in c.adapters for ls in a.lines}
    originals: dict[int, tuple[int | None, str]] = {}
    for key, line in world.lines_by_key.items():
        if key not in spec_numbers:
            continue
        new_number_id = numbers[spec_numbers[key]].id
        originals[line.id] = (line.number_id, line.auth_user)
        if line.number_id != new_number_id or line.auth_user != final_auth[key]:
            line.number_id = None
            line.auth_user = f" import {line.id}"  # spaces: never a valid auth user
    await session.flush()

    for cs in doc.customers:
        customer = customers[cs.external_id]
        for a in cs.adapters:
            for ls in a.lines:
                key = (a.mac, ls.port)
                _upsert_line(
                    session, ls, customer, adapters[a.mac], numbers[ls.number], final_auth[key],
                    world.lines_by_key.get(key), originals, box, realm, counts,
                )
    await session.flush()
    await _apply_policy(session, doc, customers, numbers)


async def _apply_policy(session: AsyncSession, doc: ImportDoc, customers: dict[str, Customer],
                        numbers: dict[str, Number]) -> None:
    """Forwarding and barring per line, barring and fraud limits per customer (``import_policy``)."""
    for cs in doc.customers:
        customer = customers[cs.external_id]
        await apply_customer_policy(session, customer.id, cs.external_id, cs.policy, "import")
        for a in cs.adapters:
            for ls in a.lines:
                if ls.policy.forwarding is None and ls.policy.barring is None:
                    continue
                line_id = (await session.execute(select(Line.id).where(Line.number_id == numbers[ls.number].id))).scalar_one()
                targets: dict[ForwardKind, str] = {}
                for kind, target, _t in ls.policy.forwarding or ():
                    try:
                        targets[kind] = normalise_number(target)
                    except ValueError:
                        targets[kind] = target  # a short code the operator allows: the engine normalises it
                await apply_line_policy(session, line_id, ls.number, customer.id, ls.policy, targets, "import")
    await session.flush()


def _upsert_customer(session: AsyncSession, cs: CustomerSpec, world: _World, counts: _Counts) -> Customer:
    customer = world.customers.get(cs.external_id)
    created = customer is None
    if customer is None:
        customer = Customer(
            external_id=cs.external_id,
            name=cs.name,
            kind=cs.kind or CustomerKind.PRIVATE,
            language=cs.language or Language.NB,
        )
        customer.contacts = []
        session.add(customer)
        changed = True
    else:
        changed = _set(customer, "name", cs.name)
        if cs.kind is not None:
            changed |= _set(customer, "kind", cs.kind)
        if cs.language is not None:
            changed |= _set(customer, "language", cs.language)
    if cs.set_credit_limit:
        changed |= _set(customer, "credit_limit_ore", cs.credit_limit_ore)
    if cs.set_address:
        a = cs.address
        changed |= _set(customer, "address_street", None if a is None else a.street)
        changed |= _set(customer, "address_postcode", None if a is None else a.postcode)
        changed |= _set(customer, "address_city", None if a is None else a.city)
    if cs.email is not None or cs.phone is not None or cs.contact_name is not None:
        contact = next((c for c in customer.contacts if c.is_primary), None)
        if contact is None:
            contact = CustomerContact(is_primary=True)
            customer.contacts.append(contact)
            changed = True
        for attr, value in (("email", cs.email), ("phone", cs.phone), ("name", cs.contact_name)):
            if value is not None:
                changed |= _set(contact, attr, value)
    counts.add("customers", created=created, changed=changed)
    return customer


def _upsert_adapter(
    session: AsyncSession, a: AdapterSpec, customer: Customer, world: _World, box: SecretBox, counts: _Counts
) -> Adapter:
    adapter = world.adapters.get(a.mac)
    if adapter is None:
        adapter = Adapter(
            mac=a.mac,
            model=a.model,
            vendor=MODELS[a.model].vendor_name,
            customer_id=customer.id,
            description=a.description,
            provisioning_secret_enc=box.encrypt(new_provisioning_secret(), context=CTX_ADAPTER_SECRET),
        )
        session.add(adapter)
        counts.add("adapters", created=True)
        return adapter
    changed = _set(adapter, "customer_id", customer.id)
    changed |= _set(adapter, "model", a.model)
    changed |= _set(adapter, "vendor", MODELS[a.model].vendor_name)
    if a.description is not None:
        changed |= _set(adapter, "description", a.description)
    counts.add("adapters", changed=changed)
    return adapter


def _upsert_number(
    session: AsyncSession, ls: LineSpec, customer: Customer, world: _World, counts: _Counts
) -> Number:
    number = world.numbers.get(ls.number)
    if number is None:
        number = Number(e164=ls.number, customer_id=customer.id, unlisted=bool(ls.unlisted))
        session.add(number)
        counts.add("numbers", created=True)
        return number
    changed = _set(number, "customer_id", customer.id)  # claims a pool number
    if ls.unlisted is not None:
        changed |= _set(number, "unlisted", ls.unlisted)
    counts.add("numbers", changed=changed)
    return number


def _upsert_line(
    session: AsyncSession,
    ls: LineSpec,
    customer: Customer,
    adapter: Adapter,
    number: Number,
    auth_user: str,
    line: Line | None,
    originals: dict[int, tuple[int | None, str]],
    box: SecretBox,
    realm: str,
    counts: _Counts,
) -> None:
    if line is None:
        line = Line(
            customer_id=customer.id,
            adapter_id=adapter.id,
            port=ls.port,
            number_id=number.id,
            auth_user=auth_user,
            display_name=ls.display_name,
            language=ls.language or customer.language,
            alarm=bool(ls.alarm),
            enabled=True if ls.enabled is None else ls.enabled,
        )
        apply_secret(line, ls.password or secrets.token_urlsafe(12), box, realm)
        session.add(line)
        counts.add("lines", created=True)
        return
    old_number_id, old_auth = originals[line.id]
    line.number_id, line.auth_user = number.id, auth_user
    changed = old_number_id != number.id or old_auth != auth_user
    changed |= _set(line, "customer_id", customer.id)
    for attr, value in (
        ("display_name", ls.display_name),
        ("language", ls.language),
        ("alarm", ls.alarm),
        ("enabled", ls.enabled),
    ):
        if value is not None:
            changed |= _set(line, attr, value)
    current = box.decrypt(line.secret_enc, context=CTX_LINE_SECRET)
    secret = ls.password if ls.password is not None else current
    # HA1 covers user and realm too: recompute when any of the three changed.
    if secret != current or old_auth != auth_user or line.ha1_realm != realm:
        apply_secret(line, secret, box, realm)
        changed = True
    counts.add("lines", changed=changed)
