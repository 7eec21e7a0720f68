"""Every table of the softswitch, as typed SQLAlchemy 2 models.

Conventions (why they matter is in ``base.py``):

* Surrogate integer keys everywhere; business keys (customer number, MAC, E.164,
  SIP auth user) are separate UNIQUE columns, so they can change without rewriting
  foreign keys.
* Enumerations are stored as short strings with a CHECK constraint (no native
  PostgreSQL enum types): adding a value is then a one-line batch migration on both
  databases.
* Money is integer øre (1/100 NOK): exact, and SQLite has no decimal type.
* All timestamps are timezone-aware UTC (``UtcDateTime``).
* Relationships never lazy-load (``lazy="raise"``): under asyncio an implicit load
  fails obscurely, so queries say what they need (``selectinload``/``joinedload``).
* Secrets that must be given back in clear (SIP passwords go into adapter configs,
  trunk passwords into outgoing digest answers) are stored encrypted by
  ``crypto.SecretBox``; columns holding ciphertext end in ``_enc``. Secrets that are
  only ever checked (API tokens, operator passwords) are stored as hashes.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from switch.store.base import Base, JsonDoc, utcnow

__all__ = [
    "Adapter",
    "AdapterLamp",
    "ApiToken",
    "AuditEvent",
    "BarringCategory",
    "BillingTotal",
    "Binding",
    "CallDirection",
    "CallRecord",
    "ConfigFetch",
    "Customer",
    "CustomerBarring",
    "CustomerContact",
    "CustomerFraudLimits",
    "CustomerKind",
    "CustomerState",
    "FeatureCodeAction",
    "FeatureCodePolicy",
    "ForwardKind",
    "ForwardingRule",
    "LampEvent",
    "LampName",
    "LampState",
    "Language",
    "Line",
    "LineBarring",
    "Number",
    "OperatorRole",
    "OperatorUser",
    "QualifyStats",
    "Route",
    "RouteTrunk",
    "Suspension",
    "SuspensionLevel",
    "SuspensionReason",
    "Tariff",
    "TokenRole",
    "Transport",
    "Trunk",
    "UnclaimedAdapter",
    "WebSession",
]


# --------------------------------------------------------------------------- enums


class CustomerKind(enum.StrEnum):
    PRIVATE = "private"
    BUSINESS = "business"


class CustomerState(enum.StrEnum):
    """Contract state. Temporary blocking is *not* a state: it is an active
    ``Suspension`` row, which carries who/why and is lifted with an audit trail."""

    ACTIVE = "active"
    TERMINATED = "terminated"


class Language(enum.StrEnum):
    """Language of announcements and adapter prompts."""

    NB = "nb"
    EN = "en"


class Transport(enum.StrEnum):
    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"
    WS = "ws"
    WSS = "wss"


class LampName(enum.StrEnum):
    """The four lamps printed on the adapter, as support staff name them."""

    PWR = "PWR"
    WAN = "WAN"
    TEL1 = "Tel1"
    TEL2 = "Tel2"


class LampState(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    OFF = "off"


class ForwardKind(enum.StrEnum):
    """GSM-style forwarding conditions (``*21*``, ``*67*``, ``*61*``, ``*62*``)."""

    UNCONDITIONAL = "unconditional"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    UNREACHABLE = "unreachable"


class BarringCategory(enum.StrEnum):
    """Outgoing barring ("sperretjeneste"). Emergency numbers are never barred."""

    INTERNATIONAL = "international"
    MOBILE = "mobile"
    PREMIUM = "premium"  # 815, 820, 829 ("teletorg")
    DIRECTORY = "directory"  # 18xx directory enquiries
    SHARED_COST = "shared_cost"  # 810
    ALL_OUTGOING = "all_outgoing"
    SPECIAL = "special"  # 5-digit business numbers, 1xx/1xxx services, other 8xx special numbers


class SuspensionLevel(enum.StrEnum):
    """``soft``: outgoing only to emergency and customer service, incoming still rings.
    ``hard``: outgoing only to emergency, incoming refused too."""

    SOFT = "soft"
    HARD = "hard"


class SuspensionReason(enum.StrEnum):
    UNPAID = "unpaid"
    CREDIT_LIMIT = "credit_limit"
    FRAUD = "fraud"
    CUSTOMER_REQUEST = "customer_request"
    OTHER = "other"


class FeatureCodeAction(enum.StrEnum):
    ALLOW = "allow"
    REFUSE = "refuse"


class TokenRole(enum.StrEnum):
    """A bearer token's own role (a token linked to an operator user takes the user's role instead).

    ``operator`` is the role of tokens made before roles existed: it acts as ``admin``.
    """

    OPERATOR = "operator"
    CUSTOMER = "customer"
    ADMIN = "admin"
    SUPPORT = "support"
    READONLY = "readonly"


class OperatorRole(enum.StrEnum):
    ADMIN = "admin"
    SUPPORT = "support"
    READONLY = "readonly"


class CallDirection(enum.StrEnum):
    OUTGOING = "outgoing"  # our line → trunk
    INCOMING = "incoming"  # trunk → our line
    ONNET = "onnet"  # our line → our line


def _enum(cls: type[enum.StrEnum], name: str, length: int = 16) -> Enum:
    """String column + CHECK constraint (named ``ck_<table>_<name>``) for a StrEnum."""
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=length,
        validate_strings=True,
        values_callable=lambda e: [m.value for m in e],
    )


def _fk(target: str, ondelete: str) -> ForeignKey:
    return ForeignKey(target, ondelete=ondelete)


# ----------------------------------------------------------------------- customers


class Customer(Base):
    """A subscriber: a household or a business."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The operator's customer number ("C1001"): what support and import files use.
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[CustomerKind] = mapped_column(_enum(CustomerKind, "kind"), default=CustomerKind.PRIVATE)
    language: Mapped[Language] = mapped_column(_enum(Language, "language", 8), default=Language.NB)
    state: Mapped[CustomerState] = mapped_column(_enum(CustomerState, "state"), default=CustomerState.ACTIVE)
    #: Outgoing calls are blocked when rated usage exceeds this (terms of service); None = no limit.
    credit_limit_ore: Mapped[int | None] = mapped_column(Integer)
    #: "Min side" self-service login; reset by the operator.
    portal_password_hash: Mapped[str | None] = mapped_column(String(255))
    #: Postal address (the directory listing export); all three set or all NULL. Norwegian 4-digit postcode.
    address_street: Mapped[str | None] = mapped_column(String(200))
    address_postcode: Mapped[str | None] = mapped_column(String(4))
    address_city: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    contacts: Mapped[list[CustomerContact]] = relationship(
        lazy="raise", back_populates="customer", cascade="all, delete-orphan", passive_deletes=True
    )
    numbers: Mapped[list[Number]] = relationship(lazy="raise", back_populates="customer", passive_deletes=True)
    adapters: Mapped[list[Adapter]] = relationship(lazy="raise", back_populates="customer", passive_deletes=True)
    lines: Mapped[list[Line]] = relationship(lazy="raise", back_populates="customer", passive_deletes=True)

    __table_args__ = (CheckConstraint("credit_limit_ore IS NULL OR credit_limit_ore >= 0", name="credit_limit"),)


class CustomerContact(Base):
    __tablename__ = "customer_contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(_fk("customers.id", "CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    #: The contact invoices and notices go to; the importer maintains exactly one.
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)

    customer: Mapped[Customer] = relationship(lazy="raise", back_populates="contacts")


class Number(Base):
    """A telephone number the operator holds, owned by a customer, used by at most one line."""

    __tablename__ = "numbers"

    id: Mapped[int] = mapped_column(primary_key=True)
    e164: Mapped[str] = mapped_column(String(16), unique=True)
    #: NULL: in the operator's pool (ported out, quarantined, not yet sold).
    customer_id: Mapped[int | None] = mapped_column(_fk("customers.id", "SET NULL"), index=True)
    #: Opted out of directory services (1881, Gulesider).
    unlisted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    customer: Mapped[Customer | None] = relationship(lazy="raise", back_populates="numbers")
    line: Mapped[Line | None] = relationship(lazy="raise", back_populates="number", uselist=False)

    __table_args__ = (CheckConstraint("e164 LIKE '+%'", name="e164"),)


# ------------------------------------------------------------------------ adapters


class Adapter(Base):
    """A telephone adapter (ATA) with two FXS ports, identified by its MAC."""

    __tablename__ = "adapters"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Lower-case 12 hex digits, no separators (``repo_adapters.normalise_mac``).
    mac: Mapped[str] = mapped_column(String(12), unique=True)
    #: NULL: in stock, or returned.
    customer_id: Mapped[int | None] = mapped_column(_fk("customers.id", "SET NULL"), index=True)
    vendor: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(32))
    description: Mapped[str | None] = mapped_column(String(200))
    #: Last firmware version the adapter reported when fetching its config.
    firmware_seen: Mapped[str | None] = mapped_column(String(100))
    #: Per-device secret the adapter proves when fetching its config (encrypted).
    provisioning_secret_enc: Mapped[str] = mapped_column(Text)
    last_config_fetch_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    customer: Mapped[Customer | None] = relationship(lazy="raise", back_populates="adapters")
    lines: Mapped[list[Line]] = relationship(lazy="raise", back_populates="adapter", order_by="Line.port")
    lamps: Mapped[list[AdapterLamp]] = relationship(lazy="raise", cascade="all, delete-orphan", passive_deletes=True)

    __table_args__ = (CheckConstraint("length(mac) = 12", name="mac"),)


class Line(Base):
    """One phone port of an adapter: a SIP account with a number."""

    __tablename__ = "lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(_fk("customers.id", "CASCADE"), index=True)
    #: RESTRICT: replacing an adapter moves its lines; deleting it must not drop them.
    adapter_id: Mapped[int] = mapped_column(_fk("adapters.id", "RESTRICT"))
    port: Mapped[int] = mapped_column(Integer)
    #: NULL only transiently (a number being moved between lines) or for a line whose
    #: number was ported out; such lines get no SIP credentials.
    number_id: Mapped[int | None] = mapped_column(_fk("numbers.id", "RESTRICT"), unique=True)
    #: Digest username (RFC 7616 §3.4); defaults to the national number.
    auth_user: Mapped[str] = mapped_column(String(64), unique=True)
    secret_enc: Mapped[str] = mapped_column(Text)
    #: HA1 = H(user:realm:password), RFC 7616 §3.4.2, so digest checks need no decryption.
    ha1_md5: Mapped[str] = mapped_column(String(32))
    ha1_sha256: Mapped[str] = mapped_column(String(64))
    #: The realm the HA1 values were computed for; a realm change needs a rehash.
    ha1_realm: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(100))
    language: Mapped[Language] = mapped_column(_enum(Language, "language", 8), default=Language.NB)
    #: A safety alarm ("trygghetsalarm") is connected: conservative adapter settings.
    alarm: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    customer: Mapped[Customer] = relationship(lazy="raise", back_populates="lines")
    adapter: Mapped[Adapter] = relationship(lazy="raise", back_populates="lines")
    number: Mapped[Number | None] = relationship(lazy="raise", back_populates="line")
    forwarding_rules: Mapped[list[ForwardingRule]] = relationship(
        lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )
    barrings: Mapped[list[LineBarring]] = relationship(lazy="raise", cascade="all, delete-orphan", passive_deletes=True)

    __table_args__ = (
        UniqueConstraint("adapter_id", "port"),
        CheckConstraint("port IN (1, 2)", name="port"),
    )


# --------------------------------------------------------------------- registration


class Binding(Base):
    """A registered contact of a line (RFC 3261 §10.3), after Kamailio usrloc's ucontact."""

    __tablename__ = "bindings"

    id: Mapped[int] = mapped_column(primary_key=True)
    line_id: Mapped[int] = mapped_column(_fk("lines.id", "CASCADE"))
    contact_uri: Mapped[str] = mapped_column(Text)
    #: Where the REGISTER really came from (RFC 3581 received/rport): the NAT binding.
    received_host: Mapped[str] = mapped_column(String(64))
    received_port: Mapped[int] = mapped_column(Integer)
    transport: Mapped[Transport] = mapped_column(_enum(Transport, "transport", 8))
    expires_at: Mapped[datetime] = mapped_column(index=True)
    call_id: Mapped[str] = mapped_column(String(255))
    cseq: Mapped[int] = mapped_column(Integer)
    user_agent: Mapped[str | None] = mapped_column(String(255))
    #: RFC 5626 ``+sip.instance`` and ``reg-id``.
    instance: Mapped[str | None] = mapped_column(String(255))
    reg_id: Mapped[int | None] = mapped_column(Integer)
    q: Mapped[float | None] = mapped_column(Float)
    #: RFC 3327 Path header values, in order.
    path: Mapped[list[str] | None] = mapped_column(JsonDoc)
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_keepalive: Mapped[datetime | None] = mapped_column()

    # The unique (line_id, contact_uri) index also serves "bindings of a line".
    __table_args__ = (UniqueConstraint("line_id", "contact_uri"),)


class QualifyStats(Base):
    """OPTIONS ping results for one binding: what the WAN lamp is computed from."""

    __tablename__ = "qualify_stats"

    binding_id: Mapped[int] = mapped_column(_fk("bindings.id", "CASCADE"), primary_key=True)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    lost: Mapped[int] = mapped_column(Integer, default=0)
    consecutive_lost: Mapped[int] = mapped_column(Integer, default=0)
    #: When the current run of unanswered pings began (None while answering).
    first_lost_at: Mapped[datetime | None] = mapped_column()
    last_sent_at: Mapped[datetime | None] = mapped_column()
    last_reply_at: Mapped[datetime | None] = mapped_column()
    last_rtt_ms: Mapped[float | None] = mapped_column(Float)
    #: Exponentially weighted mean of the round-trip time.
    avg_rtt_ms: Mapped[float | None] = mapped_column(Float)
    #: Most recent samples, oldest first; ``null`` marks a lost ping.
    history: Mapped[list[float | None]] = mapped_column(JsonDoc, default=list)


# ------------------------------------------------------------------- adapter status


class AdapterLamp(Base):
    """What one lamp of an adapter would show now, and why."""

    __tablename__ = "adapter_lamps"

    adapter_id: Mapped[int] = mapped_column(_fk("adapters.id", "CASCADE"), primary_key=True)
    lamp: Mapped[LampName] = mapped_column(_enum(LampName, "lamp", 8), primary_key=True)
    state: Mapped[LampState] = mapped_column(_enum(LampState, "state", 8))
    reason: Mapped[str] = mapped_column(String(200), default="")
    #: When the lamp entered its current *state* (a reason change keeps it).
    since: Mapped[datetime] = mapped_column()


class LampEvent(Base):
    """History of lamp changes, so support can tell when a line went dark."""

    __tablename__ = "lamp_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    adapter_id: Mapped[int] = mapped_column(_fk("adapters.id", "CASCADE"))
    lamp: Mapped[LampName] = mapped_column(_enum(LampName, "lamp", 8))
    old_state: Mapped[LampState | None] = mapped_column(_enum(LampState, "old_state", 8))
    new_state: Mapped[LampState] = mapped_column(_enum(LampState, "new_state", 8))
    reason: Mapped[str] = mapped_column(String(200), default="")
    at: Mapped[datetime] = mapped_column()

    __table_args__ = (Index(None, "adapter_id", "at"),)


class ConfigFetch(Base):
    """One configuration download by an adapter (the PWR lamp's evidence)."""

    __tablename__ = "config_fetches"

    id: Mapped[int] = mapped_column(primary_key=True)
    adapter_id: Mapped[int] = mapped_column(_fk("adapters.id", "CASCADE"))
    fetched_at: Mapped[datetime] = mapped_column()
    remote_addr: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    #: sha256 hex of the config served, to tell "same config again" from a change.
    config_hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index(None, "adapter_id", "fetched_at"),)


class UnclaimedAdapter(Base):
    """An unknown MAC that asked for a config: waiting for support to assign it."""

    __tablename__ = "unclaimed_adapters"

    id: Mapped[int] = mapped_column(primary_key=True)
    mac: Mapped[str] = mapped_column(String(12), unique=True)
    first_seen_at: Mapped[datetime] = mapped_column()
    last_seen_at: Mapped[datetime] = mapped_column()
    last_addr: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    #: Model guessed from the request (URL or User-Agent), when recognisable.
    model_hint: Mapped[str | None] = mapped_column(String(32))
    fetch_count: Mapped[int] = mapped_column(Integer, default=1)


# -------------------------------------------------------------------------- policy


class ForwardingRule(Base):
    """Call forwarding of a line, managed through the API ("Min side"), not ``*21*``."""

    __tablename__ = "forwarding_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    line_id: Mapped[int] = mapped_column(_fk("lines.id", "CASCADE"))
    kind: Mapped[ForwardKind] = mapped_column(_enum(ForwardKind, "kind"))
    #: E.164 target.
    target: Mapped[str] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Ring time before forwarding, for ``no_answer`` only.
    timeout_s: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (
        UniqueConstraint("line_id", "kind"),
        CheckConstraint("timeout_s IS NULL OR (timeout_s BETWEEN 5 AND 300)", name="timeout_s"),
    )


class LineBarring(Base):
    """One active outgoing-barring category on a line."""

    __tablename__ = "line_barrings"

    line_id: Mapped[int] = mapped_column(_fk("lines.id", "CASCADE"), primary_key=True)
    category: Mapped[BarringCategory] = mapped_column(_enum(BarringCategory, "category", 32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(100))


class CustomerBarring(Base):
    """One outgoing-barring category for every line of a customer."""

    __tablename__ = "customer_barrings"

    customer_id: Mapped[int] = mapped_column(_fk("customers.id", "CASCADE"), primary_key=True)
    category: Mapped[BarringCategory] = mapped_column(_enum(BarringCategory, "category", 32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(100))


class CustomerFraudLimits(Base):
    """A customer's own fraud guard limits; a missing row or NULL = the residential default (2, 4, 20, 8)."""

    __tablename__ = "customer_fraud_limits"

    customer_id: Mapped[int] = mapped_column(_fk("customers.id", "CASCADE"), primary_key=True)
    calls_per_line: Mapped[int | None] = mapped_column(Integer)
    calls_per_customer: Mapped[int | None] = mapped_column(Integer)
    attempts_per_hour: Mapped[int | None] = mapped_column(Integer)
    night_attempts_per_hour: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(100))


class Suspension(Base):
    """A block on outgoing calls (not emergency), with its own audit trail.

    Active while ``lifted_at`` is NULL. ``line_id`` NULL suspends every line of
    the customer. Rows are never deleted: lifted ones are the history.
    """

    __tablename__ = "suspensions"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(_fk("customers.id", "CASCADE"), index=True)
    line_id: Mapped[int | None] = mapped_column(_fk("lines.id", "CASCADE"))
    reason: Mapped[SuspensionReason] = mapped_column(_enum(SuspensionReason, "reason", 32))
    level: Mapped[SuspensionLevel] = mapped_column(_enum(SuspensionLevel, "level", 8), default=SuspensionLevel.SOFT)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))
    lifted_at: Mapped[datetime | None] = mapped_column()
    lifted_by: Mapped[str | None] = mapped_column(String(100))
    lift_note: Mapped[str | None] = mapped_column(Text)


class FeatureCodePolicy(Base):
    """Operator policy for one star code; defaults live in ``feature_codes/``."""

    __tablename__ = "feature_code_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The code's prefix as dialled, e.g. ``*21*``, ``#21#``, ``##002#``.
    code: Mapped[str] = mapped_column(String(16), unique=True)
    action: Mapped[FeatureCodeAction] = mapped_column(_enum(FeatureCodeAction, "action", 8))
    #: Prompt played when refused (announcement key); None = the generic one.
    announcement: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# ------------------------------------------------------------------------ routing


class Trunk(Base):
    """An interconnect towards a carrier (or an emergency-call gateway)."""

    __tablename__ = "trunks"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=5060)
    transport: Mapped[Transport] = mapped_column(_enum(Transport, "transport", 8), default=Transport.UDP)
    username: Mapped[str | None] = mapped_column(String(128))
    password_enc: Mapped[str | None] = mapped_column(Text)
    #: CIDRs incoming calls from this carrier may come from (trunk ACL).
    allowed_sources: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    #: Carries 110/112/113.
    emergency: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (CheckConstraint("port BETWEEN 1 AND 65535", name="port"),)


class Route(Base):
    """Longest-prefix route: E.164 prefix → ordered trunks (failover order)."""

    __tablename__ = "routes"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: E.164 prefix with ``+`` (``+47``, ``+4781``, ``+`` for everything).
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)

    trunks: Mapped[list[RouteTrunk]] = relationship(
        lazy="raise", order_by="RouteTrunk.position", cascade="all, delete-orphan", passive_deletes=True
    )


class RouteTrunk(Base):
    __tablename__ = "route_trunks"

    route_id: Mapped[int] = mapped_column(_fk("routes.id", "CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: RESTRICT: a trunk still used by a route cannot disappear from under it.
    trunk_id: Mapped[int] = mapped_column(_fk("trunks.id", "RESTRICT"), index=True)

    trunk: Mapped[Trunk] = relationship(lazy="raise")

    __table_args__ = (UniqueConstraint("route_id", "trunk_id"),)


# --------------------------------------------------------------------- call records


class CallRecord(Base):
    """A call detail record (CDR), written when the call ends.

    Numbers are copied, not only referenced: a CDR must still read right after the
    line is gone or the number has moved (it is an invoice line).
    """

    __tablename__ = "call_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[str] = mapped_column(String(255), index=True)
    direction: Mapped[CallDirection] = mapped_column(_enum(CallDirection, "direction"))
    calling_line_id: Mapped[int | None] = mapped_column(_fk("lines.id", "SET NULL"))
    calling_number: Mapped[str] = mapped_column(String(32))
    called_line_id: Mapped[int | None] = mapped_column(_fk("lines.id", "SET NULL"))
    #: As the caller dialled it.
    dialled: Mapped[str] = mapped_column(String(64))
    #: E.164 (or short code) after numbering; None when it could not be normalised.
    normalised: Mapped[str | None] = mapped_column(String(32))
    #: emergency, mobile, fixed, freephone, premium, international, ...
    number_class: Mapped[str | None] = mapped_column(String(32))
    route_id: Mapped[int | None] = mapped_column(_fk("routes.id", "SET NULL"))
    route_prefix: Mapped[str | None] = mapped_column(String(16))
    trunk_id: Mapped[int | None] = mapped_column(_fk("trunks.id", "SET NULL"))
    trunk_name: Mapped[str | None] = mapped_column(String(64))
    #: When this number was reached by forwarding: the forwarding line's number.
    forwarded_from: Mapped[str | None] = mapped_column(String(32))
    setup_at: Mapped[datetime] = mapped_column()
    answer_at: Mapped[datetime | None] = mapped_column()
    end_at: Mapped[datetime | None] = mapped_column()
    #: Billable seconds (answer → end); 0 when not answered.
    duration_s: Mapped[int] = mapped_column(Integer, default=0)
    final_code: Mapped[int | None] = mapped_column(Integer)
    #: Our cause name (the one the announcement and the call history show).
    cause: Mapped[str | None] = mapped_column(String(64))
    #: The support code the refusal's announcement ended with ("kode 2 1" → "21"), so support
    #: can match what the customer heard (switch/media/prompts/catalogue.csv).
    support_code: Mapped[str | None] = mapped_column(String(8))
    #: The price billed to the calling line's customer, whole øre (API: ``price_ore``);
    #: None when nobody is billed (a carrier's call to us) or no tariff zone matched.
    charge_ore: Mapped[int | None] = mapped_column(Integer)
    #: The policy engine's steps for this call, a JSON list of strings (why it was refused or went where).
    decision_trail: Mapped[str | None] = mapped_column(Text)
    #: Forwards the call took, a JSON list of {"from", "to", "reason"} (RFC 5806 reasons), oldest first.
    forward_chain: Mapped[str | None] = mapped_column(Text)
    #: The tariff zone the price came from (``nordic``, ``service_1881``, ...).
    zone: Mapped[str | None] = mapped_column(String(32))
    #: The tariff version the call was rated by (the one valid when it started).
    tariff_version: Mapped[int | None] = mapped_column(Integer)
    #: Per-call quality report where the adapter sends one (RTCP-XR / PUBLISH).
    quality: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)

    __table_args__ = (
        Index(None, "calling_line_id", "setup_at"),
        Index(None, "called_line_id", "setup_at"),
        Index(None, "setup_at"),
        CheckConstraint("duration_s >= 0", name="duration_s"),
    )


# ------------------------------------------------------------------------ billing


class Tariff(Base):
    """One imported price list; a call is rated by the one valid when it started.

    ``document`` is the normalised tariff (``switch.services.rating.tariff``):
    zones with prices and resolved prefixes, so re-rating never depends on
    the country table of the code that happens to run.
    """

    __tablename__ = "tariffs"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    name: Mapped[str] = mapped_column(String(200))
    valid_from: Mapped[datetime] = mapped_column(index=True)
    document: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    sha256: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
    imported_by: Mapped[str] = mapped_column(String(100), default="")


class BillingTotal(Base):
    """A customer's rated calls in one billing period: the running total the credit limit checks."""

    __tablename__ = "billing_totals"

    customer_id: Mapped[int] = mapped_column(_fk("customers.id", "CASCADE"), primary_key=True)
    #: Start of the billing period (a calendar month by default), UTC.
    period_start: Mapped[datetime] = mapped_column(primary_key=True)
    total_ore: Mapped[int] = mapped_column(Integer, default=0)
    calls: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# -------------------------------------------------------------- operators and audit


class OperatorUser(Base):
    __tablename__ = "operator_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[OperatorRole] = mapped_column(_enum(OperatorRole, "role"), default=OperatorRole.SUPPORT)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column()


class ApiToken(Base):
    """A bearer token; only sha256(secret) is stored, the secret is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[TokenRole] = mapped_column(_enum(TokenRole, "role"))
    customer_id: Mapped[int | None] = mapped_column(_fk("customers.id", "CASCADE"), index=True)
    operator_user_id: Mapped[int | None] = mapped_column(_fk("operator_users.id", "CASCADE"))
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        CheckConstraint("role <> 'customer' OR customer_id IS NOT NULL", name="customer_scope"),
    )


class WebSession(Base):
    """A browser login (operator web UI or the customer's "Min side").

    Server-side, so support can revoke it: the cookie carries a random secret,
    the table only its sha256 (as for API tokens). The CSRF token is bound to
    the session and checked on every form post.
    """

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: ``operator`` (web UI) or ``customer`` (Min side).
    kind: Mapped[str] = mapped_column(String(16))
    operator_user_id: Mapped[int | None] = mapped_column(_fk("operator_users.id", "CASCADE"), index=True)
    customer_id: Mapped[int | None] = mapped_column(_fk("customers.id", "CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    remote_addr: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(255), default="")

    __table_args__ = (
        CheckConstraint("kind IN ('operator', 'customer')", name="kind"),
        CheckConstraint(
            "(kind = 'operator' AND operator_user_id IS NOT NULL) OR (kind = 'customer' AND customer_id IS NOT NULL)",
            name="subject",
        ),
    )


class AuditEvent(Base):
    """Who did what to which object, when: operator actions, imports, suspensions."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    #: ``operator:<username>``, ``customer:<external id>``, ``import``, ``system``.
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int | None] = mapped_column(_fk("customers.id", "SET NULL"))
    details: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)

    __table_args__ = (
        Index(None, "customer_id", "at"),
        Index(None, "subject_type", "subject_id", "at"),
    )
