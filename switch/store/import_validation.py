"""Phase 1 of ``softswitch import FILE``: read and validate the document on its own.

Why apart from the writer (``importer``): this half is pure (no database, no
session), it is what the API and the CLI run before anything is written, and
it grows with every new section of the file, while the writer grows with the
schema.

``load_import_file`` / ``parse_import_document`` check types, allowed values and
duplicates inside the file and return an ``ImportDoc`` with normalised values
(E.164 numbers, 12-hex MACs, lower-case models), or raise
``ImportValidationError`` carrying every issue found, each with a path such as
``customers[0].adapters[1].lines[0].port: must be 1 or 2``. The semantics of
the file are documented in ``importer`` and examples/customers.yaml.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from switch.store.address import Address, parse_address
from switch.store.adapter_models import ADAPTER_MODELS, MODELS
from switch.store.import_policy import CustomerPolicySpec, LinePolicySpec, parse_customer_policy, parse_line_policy
from switch.store.models import CustomerKind, Language
from switch.store.repo_adapters import format_mac, normalise_mac
from switch.store.repo_lines import normalise_number

#: the longest string any field of the import file may hold (the API's and the web forms' limit too)
MAX_TEXT = 1000

__all__ = [
    "MAX_TEXT",
    "AdapterSpec",
    "CustomerSpec",
    "ImportDoc",
    "ImportIssue",
    "ImportValidationError",
    "LineSpec",
    "issue_order",
    "load_import_file",
    "parse_import_document",
]

T = TypeVar("T")


#: ``trunks`` and ``routes`` belong to ``repo_trunks`` (documented there).
TOP_FIELDS = ("customers", "trunks", "routes")
CUSTOMER_FIELDS = ("id", "name", "type", "language", "email", "phone", "contact_name", "adapters", "barring", "fraud_limits",
                   "credit_limit_ore", "address")
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
    "forwarding",
    "barring",
)

_CUSTOMER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Printable ASCII without space: it goes into adapter configs of many vendors,
# some of which cannot escape anything else.
_PASSWORD = re.compile(r"[\x21-\x7e]{8,64}")
# RFC 3261 §25.1 user unreserved characters, minus those that need quoting somewhere.
_AUTH_USER = re.compile(r"[A-Za-z0-9._~+\-]{1,64}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


# --------------------------------------------------------------------------- types


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
    policy: LinePolicySpec = LinePolicySpec()


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
    policy: CustomerPolicySpec = CustomerPolicySpec()
    #: ``credit_limit_ore`` given (a number, or null to remove the limit); absent keeps the stored one
    set_credit_limit: bool = False
    credit_limit_ore: int | None = None
    #: ``address`` given (an address, or null to remove it); absent keeps the stored one
    set_address: bool = False
    address: Address | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportDoc:
    customers: tuple[CustomerSpec, ...]
    #: Where it came from (file name), for the audit trail.
    source: str = ""
    #: The raw ``trunks`` / ``routes`` sections, if any: validated and applied by
    #: ``repo_trunks.import_routing`` inside the same transaction.
    routing: Mapping[str, Any] | None = None


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


#: A further check of a parsed document (e.g. the call policy's forward-target rules): its issues.
DocumentCheck = Callable[["ImportDoc"], list["ImportIssue"]]


def load_import_file(path: str | Path, *, checks: Sequence[DocumentCheck] = ()) -> ImportDoc:
    """Read and validate an import file (JSON or YAML, by extension, else by content).
    Raises ImportValidationError listing every problem, or OSError if unreadable."""
    p = Path(path)
    text = p.read_text(encoding="utf-8-sig")
    return parse_import_document(_parse_text(text, p.name), source=p.name, checks=checks)


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
    info = MODELS.get(model or "")
    max_port = info.ports if info is not None else 2
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
    policy = parse_line_policy(ck.err, d, path)
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
        policy=policy,
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
        if isinstance(raw_model, str) and raw_model.strip().lower() in MODELS:
            model = raw_model.strip().lower()
        else:
            ck.err(f"{path}.model", f"unknown model {raw_model!r}; supported: {', '.join(ADAPTER_MODELS)}")
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
    policy = parse_customer_policy(ck.err, d, path)
    set_limit = "credit_limit_ore" in d
    limit = d.get("credit_limit_ore")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= 10**9):
        ck.err(f"{path}.credit_limit_ore", "must be a whole number of øre from 0 to 1000000000, or null for no limit")
    set_address = "address" in d
    address = None if d.get("address") is None else parse_address(d["address"], f"{path}.address", ck.err)
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
        policy=policy,
        set_credit_limit=set_limit,
        credit_limit_ore=limit if isinstance(limit, int) else None,
        set_address=set_address,
        address=address,
    )


def _duplicates(ck: _Checker, entries: Iterable[tuple[str, str, str]], what: str) -> None:
    """Report every value seen twice: entries are (value, path, shown value)."""
    first: dict[str, str] = {}
    for value, path, shown in entries:
        if value in first:
            ck.err(path, f"duplicate {what} {shown} (also at {first[value]})")
        else:
            first[value] = path


def _long_strings(value: Any, path: str) -> Iterable[str]:
    """Paths of every string (or key) in ``value`` longer than ``MAX_TEXT``, at any depth."""
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            yield path
    elif isinstance(value, dict):
        for k, v in value.items():
            where = f"{path}.{k}" if path else str(k)
            if isinstance(k, str) and len(k) > MAX_TEXT:
                yield f"{path}.<key>" if path else "<key>"
            else:
                yield from _long_strings(v, where)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _long_strings(v, f"{path}[{i}]")


def parse_import_document(data: Any, *, source: str = "", checks: Sequence[DocumentCheck] = ()) -> ImportDoc:
    """Validate an already-parsed document (e.g. from an API request body)."""
    ck = _Checker()
    if not isinstance(data, dict):
        raise ImportValidationError([ImportIssue("", 'the document must be an object with a "customers" list')])
    # The floor under every field's own check, as for API bodies and web forms: no string
    # over MAX_TEXT anywhere (fields without a tighter limit used to be stored at any length).
    long = list(_long_strings(data, ""))
    if long:
        raise ImportValidationError([ImportIssue(where, f"longer than {MAX_TEXT} characters") for where in long])
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
        raise ImportValidationError(sorted(ck.issues, key=issue_order))
    routing = {key: data[key] for key in ("trunks", "routes") if key in data}
    doc = ImportDoc(customers=tuple(customers), source=source, routing=routing or None)
    issues = [issue for check in checks for issue in check(doc)]
    if issues:
        raise ImportValidationError(sorted(issues, key=issue_order))
    return doc


def issue_order(issue: ImportIssue) -> tuple[Any, ...]:
    """Document order: customers[2] before customers[10]."""
    # re.split with the group alternates text and index: only the odd places are numbers, so two keys
    # compare place by place (a top-level key "9" stays text: it once met "customers" as an int, a 500)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(re.split(r"\[(\d+)\]", issue.path)))
