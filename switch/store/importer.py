"""``softswitch import FILE``: upsert customers, adapters and lines from JSON or YAML.

The same file may carry ``trunks`` and ``routes`` sections; those are validated and
applied by ``repo_trunks.import_routing`` in the same transaction.

Two phases, so that a bad file changes nothing:

1. ``load_import_file`` / ``parse_import_document`` check the document on its own
   (types, allowed values, duplicates inside the file) and return an ``ImportDoc``
   with normalised values (E.164 numbers, 12-hex MACs, lower-case models).
2. ``import_document`` opens ONE write transaction, checks the document against the
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

import json
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar, cast

import yaml
from sqlalchemy import Table, delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.sql import Select

from switch.store.crypto import CTX_ADAPTER_SECRET, CTX_LINE_SECRET, CTX_TRUNK_PASSWORD, SecretBox
from switch.store.engine import SessionFactory, write_session
from switch.store.models import (
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
from switch.store.repo_adapters import MODEL_VENDORS, format_mac, new_provisioning_secret, normalise_mac
from switch.store.repo_audit import add_audit_event
from switch.store.repo_lines import apply_secret, default_auth_user, normalise_number
from switch.store.repo_trunks import RoutingImportError, import_routing

__all__ = [
    "AdapterSpec",
    "CustomerSpec",
    "ImportDoc",
    "ImportIssue",
    "ImportReport",
    "ImportValidationError",
    "LineSpec",
    "import_document",
    "load_import_file",
    "parse_import_document",
]

T = TypeVar("T")

#: ``trunks`` and ``routes`` belong to ``repo_trunks`` (documented there).
TOP_FIELDS = ("customers", "trunks", "routes")
CUSTOMER_FIELDS = ("id", "name", "type", "language", "email", "phone", "contact_name", "adapters")
ADAPTER_FIELDS = ("mac", "model", "description", "lines")
LINE_FIELDS = (
    "port",
    "number",
    "password",
    "auth_user",
    "display_name",
    "alarm",
    "language",
    "unlisted",
    "enabled",
)
#: Ports per model: every supported model has two FXS ports.
MODEL_PORTS: dict[str, int] = dict.fromkeys(MODEL_VENDORS, 2)

_CUSTOMER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Printable ASCII without space: it goes into adapter configs of many vendors,
# some of which cannot escape anything else.
_PASSWORD = re.compile(r"[\x21-\x7e]{8,64}")
# RFC 3261 §25.1 user unreserved characters, minus those that need quoting somewhere.
_AUTH_USER = re.compile(r"[A-Za-z0-9._~+\-]{1,64}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class ImportIssue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ImportValidationError(ValueError):
    """The file was refused; ``issues`` lists every problem found."""

    def __init__(self, issues: Sequence[ImportIssue]) -> None:
        self.issues: tuple[ImportIssue, ...] = tuple(issues)
        super().__init__(self.summary())

    def summary(self) -> str:
        n = len(self.issues)
        head = f"import refused, {n} error{'s' if n != 1 else ''} (nothing was changed):"
        return "\n".join([head, *(f"  {issue}" for issue in self.issues)])


@dataclass(frozen=True, slots=True, kw_only=True)
class LineSpec:
    """A validated line entry. Optional fields are None when absent from the file."""

    path: str
    port: int
    number: str  # E.164
    password: str | None = None
    auth_user: str | None = None
    display_name: str | None = None
    alarm: bool | None = None
    language: Language | None = None
    unlisted: bool | None = None
    enabled: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AdapterSpec:
    path: str
    mac: str  # 12 lower-case hex digits
    model: str
    description: str | None = None
    lines: tuple[LineSpec, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerSpec:
    path: str
    external_id: str
    name: str
    kind: CustomerKind | None = None
    language: Language | None = None
    email: str | None = None
    phone: str | None = None  # E.164
    contact_name: str | None = None
    adapters: tuple[AdapterSpec, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportDoc:
    customers: tuple[CustomerSpec, ...]
    #: Where it came from (file name), for the audit trail.
    source: str = ""
    #: The raw ``trunks`` / ``routes`` sections, if any: validated and applied by
    #: ``repo_trunks.import_routing`` inside the same transaction.
    routing: Mapping[str, Any] | None = None


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


# ------------------------------------------------------------------ phase 1: parse


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return dict(loader.construct_mapping(node, deep=deep))


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _parse_text(text: str, name: str) -> Any:
    suffix = Path(name).suffix.lower()
    as_json = suffix == ".json" or (suffix not in (".yaml", ".yml") and text.lstrip().startswith(("{", "[")))
    if as_json:
        try:
            return json.loads(text, object_pairs_hook=_json_pairs)
        except json.JSONDecodeError as exc:
            raise ImportValidationError(
                [ImportIssue("", f"{name}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")]
            ) from exc
        except ValueError as exc:
            raise ImportValidationError([ImportIssue("", f"{name}: invalid JSON: {exc}")]) from exc
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise ImportValidationError([ImportIssue("", f"{name}: invalid YAML: {exc}")]) from exc


def load_import_file(path: str | Path) -> ImportDoc:
    """Read and validate an import file (JSON or YAML, by extension, else by content).
    Raises ImportValidationError listing every problem, or OSError if unreadable."""
    p = Path(path)
    text = p.read_text(encoding="utf-8-sig")
    return parse_import_document(_parse_text(text, p.name), source=p.name)


class _Checker:
    """Collects issues while reading untrusted nested data."""

    def __init__(self) -> None:
        self.issues: list[ImportIssue] = []

    def err(self, path: str, message: str) -> None:
        self.issues.append(ImportIssue(path, message))

    def mapping(self, value: Any, path: str, allowed: Sequence[str], required: Sequence[str]) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.err(path, f"must be an object with fields {', '.join(allowed)}")
            return None
        for key in value:
            if key not in allowed:
                self.err(f"{path}.{key}", f"unknown field (allowed: {', '.join(allowed)})")
        for key in required:
            if value.get(key) is None:
                self.err(f"{path}.{key}", "required")
        return value

    def items(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.err(path, "must be a list")
            return []
        return value

    def text(self, d: dict[str, Any], key: str, path: str, *, max_len: int) -> str | None:
        value = d.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.err(f"{path}.{key}", "must be a string")
            return None
        value = value.strip()
        if not value:
            self.err(f"{path}.{key}", "must not be empty")
            return None
        if len(value) > max_len:
            self.err(f"{path}.{key}", f"longer than {max_len} characters")
            return None
        if any(ord(c) < 32 for c in value):
            self.err(f"{path}.{key}", "must not contain control characters")
            return None
        return value

    def flag(self, d: dict[str, Any], key: str, path: str) -> bool | None:
        value = d.get(key)
        if value is None or isinstance(value, bool):
            return value
        self.err(f"{path}.{key}", "must be true or false")
        return None

    def choice(self, d: dict[str, Any], key: str, path: str, enum_cls: type[T]) -> T | None:
        value = d.get(key)
        if value is None:
            return None
        allowed = [m.value for m in enum_cls]  # type: ignore[attr-defined]
        if not isinstance(value, str) or value.strip().lower() not in allowed:
            self.err(f"{path}.{key}", f"must be {' or '.join(allowed)}")
            return None
        return enum_cls(value.strip().lower())  # type: ignore[call-arg]


def _number(ck: _Checker, value: Any, path: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        ck.err(path, "must be a string")
        return None
    try:
        return normalise_number(str(value))
    except ValueError as exc:
        ck.err(path, str(exc))
        return None


def _line(ck: _Checker, raw: Any, path: str, model: str | None) -> LineSpec | None:
    d = ck.mapping(raw, path, LINE_FIELDS, ("port", "number"))
    if d is None:
        return None
    n_issues = len(ck.issues)
    port = d.get("port")
    max_port = MODEL_PORTS.get(model or "", 2)
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= max_port):
        ck.err(f"{path}.port", "must be 1 or 2" if max_port == 2 else f"must be between 1 and {max_port}")
    number = _number(ck, d["number"], f"{path}.number") if d.get("number") is not None else None
    password = d.get("password")
    if password is not None and (not isinstance(password, str) or not _PASSWORD.fullmatch(password)):
        ck.err(
            f"{path}.password",
            "must be a string of 8 to 64 printable ASCII characters without spaces"
            + (" (quote it in YAML)" if isinstance(password, (int, float)) else ""),
        )
    auth_user = d.get("auth_user")
    if auth_user is not None and (not isinstance(auth_user, (str, int)) or not _AUTH_USER.fullmatch(str(auth_user))):
        ck.err(f"{path}.auth_user", "must be 1 to 64 characters of A-Z a-z 0-9 . _ ~ + -")
    display_name = ck.text(d, "display_name", path, max_len=100)
    if display_name is not None and any(c in display_name for c in '"\\'):
        ck.err(f"{path}.display_name", 'must not contain " or \\')
    alarm = ck.flag(d, "alarm", path)
    unlisted = ck.flag(d, "unlisted", path)
    enabled = ck.flag(d, "enabled", path)
    language = ck.choice(d, "language", path, Language)
    if len(ck.issues) != n_issues or number is None or not isinstance(port, int):
        return None
    return LineSpec(
        path=path,
        port=port,
        number=number,
        password=password,
        auth_user=str(auth_user) if auth_user is not None else None,
        display_name=display_name,
        alarm=alarm,
        language=language,
        unlisted=unlisted,
        enabled=enabled,
    )


def _adapter(ck: _Checker, raw: Any, path: str) -> AdapterSpec | None:
    d = ck.mapping(raw, path, ADAPTER_FIELDS, ("mac", "model"))
    if d is None:
        return None
    n_issues = len(ck.issues)
    mac: str | None = None
    raw_mac = d.get("mac")
    if isinstance(raw_mac, int) and not isinstance(raw_mac, bool):
        # YAML 1.1 reads an unquoted 10:22:33:44:55:66 as a base-60 integer.
        ck.err(f"{path}.mac", "was read as a number: put the MAC address in quotes")
    elif raw_mac is not None and not isinstance(raw_mac, str):
        ck.err(f"{path}.mac", "must be a string")
    elif raw_mac is not None:
        try:
            mac = normalise_mac(raw_mac)
        except ValueError as exc:
            ck.err(f"{path}.mac", str(exc))
    model: str | None = None
    raw_model = d.get("model")
    if raw_model is not None:
        if isinstance(raw_model, str) and raw_model.strip().lower() in MODEL_VENDORS:
            model = raw_model.strip().lower()
        else:
            ck.err(f"{path}.model", f"unknown model {raw_model!r}; supported: {', '.join(MODEL_VENDORS)}")
    description = ck.text(d, "description", path, max_len=200)
    lines: list[LineSpec] = []
    ports: dict[int, str] = {}
    for j, raw_line in enumerate(ck.items(d.get("lines"), f"{path}.lines")):
        lpath = f"{path}.lines[{j}]"
        spec = _line(ck, raw_line, lpath, model)
        port = raw_line.get("port") if isinstance(raw_line, dict) else None
        if isinstance(port, int) and not isinstance(port, bool):
            if port in ports:
                ck.err(f"{lpath}.port", f"duplicate port {port} on this adapter (also at {ports[port]})")
                continue
            ports[port] = lpath
        if spec is not None:
            lines.append(spec)
    if len(ck.issues) != n_issues or mac is None or model is None:
        return None
    return AdapterSpec(path=path, mac=mac, model=model, description=description, lines=tuple(lines))


def _customer(ck: _Checker, raw: Any, path: str) -> CustomerSpec | None:
    d = ck.mapping(raw, path, CUSTOMER_FIELDS, ("id", "name"))
    if d is None:
        return None
    n_issues = len(ck.issues)
    raw_id = d.get("id")
    external_id: str | None = None
    if raw_id is not None:
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or not _CUSTOMER_ID.fullmatch(str(raw_id)):
            ck.err(f"{path}.id", "must be 1 to 64 characters of A-Z a-z 0-9 . _ - (starting with a letter or digit)")
        else:
            external_id = str(raw_id)
    name = ck.text(d, "name", path, max_len=200)
    kind = ck.choice(d, "type", path, CustomerKind)
    language = ck.choice(d, "language", path, Language)
    email = ck.text(d, "email", path, max_len=254)
    if email is not None and not _EMAIL.fullmatch(email):
        ck.err(f"{path}.email", f"{email!r} is not an e-mail address")
    phone = _number(ck, d["phone"], f"{path}.phone") if d.get("phone") is not None else None
    contact_name = ck.text(d, "contact_name", path, max_len=200)
    adapters = [
        spec
        for i, raw_adapter in enumerate(ck.items(d.get("adapters"), f"{path}.adapters"))
        if (spec := _adapter(ck, raw_adapter, f"{path}.adapters[{i}]")) is not None
    ]
    if len(ck.issues) != n_issues or external_id is None or name is None:
        return None
    return CustomerSpec(
        path=path,
        external_id=external_id,
        name=name,
        kind=kind,
        language=language,
        email=email,
        phone=phone,
        contact_name=contact_name,
        adapters=tuple(adapters),
    )


def _duplicates(ck: _Checker, entries: Iterable[tuple[str, str, str]], what: str) -> None:
    """Report every value seen twice: entries are (value, path, shown value)."""
    first: dict[str, str] = {}
    for value, path, shown in entries:
        if value in first:
            ck.err(path, f"duplicate {what} {shown} (also at {first[value]})")
        else:
            first[value] = path


def parse_import_document(data: Any, *, source: str = "") -> ImportDoc:
    """Validate an already-parsed document (e.g. from an API request body)."""
    ck = _Checker()
    if not isinstance(data, dict):
        raise ImportValidationError([ImportIssue("", 'the document must be an object with a "customers" list')])
    for key in data:
        if key not in TOP_FIELDS:
            ck.err(str(key), f"unknown field (allowed: {', '.join(TOP_FIELDS)})")
    if not any(key in data for key in TOP_FIELDS):
        ck.err("customers", "required")
    customers = [
        spec
        for i, raw in enumerate(ck.items(data.get("customers"), "customers"))
        if (spec := _customer(ck, raw, f"customers[{i}]")) is not None
    ]
    # Duplicates inside the file, reported at the later occurrence. Raw entries that
    # failed validation are not in `customers`; their own errors are reported anyway.
    _duplicates(ck, ((c.external_id, f"{c.path}.id", repr(c.external_id)) for c in customers), "customer id")
    adapters = [a for c in customers for a in c.adapters]
    _duplicates(ck, ((a.mac, f"{a.path}.mac", format_mac(a.mac)) for a in adapters), "MAC")
    lines = [ln for a in adapters for ln in a.lines]
    _duplicates(ck, ((ln.number, f"{ln.path}.number", ln.number) for ln in lines), "number")
    _duplicates(
        ck,
        ((ln.auth_user, f"{ln.path}.auth_user", repr(ln.auth_user)) for ln in lines if ln.auth_user is not None),
        "auth user",
    )
    if ck.issues:
        raise ImportValidationError(sorted(ck.issues, key=_issue_order))
    routing = {key: data[key] for key in ("trunks", "routes") if key in data}
    return ImportDoc(customers=tuple(customers), source=source, routing=routing or None)


def _issue_order(issue: ImportIssue) -> tuple[Any, ...]:
    """Document order: customers[2] before customers[10]."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"\[(\d+)\]", issue.path))


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
            raise ImportValidationError(sorted(issues, key=_issue_order))
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
        await session.execute(delete(UnclaimedAdapter).where(UnclaimedAdapter.mac.in_(list(adapters))))

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
            vendor=MODEL_VENDORS[a.model],
            customer_id=customer.id,
            description=a.description,
            provisioning_secret_enc=box.encrypt(new_provisioning_secret(), context=CTX_ADAPTER_SECRET),
        )
        session.add(adapter)
        counts.add("adapters", created=True)
        return adapter
    changed = _set(adapter, "customer_id", customer.id)
    changed |= _set(adapter, "model", a.model)
    changed |= _set(adapter, "vendor", MODEL_VENDORS[a.model])
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
