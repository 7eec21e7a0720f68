"""Adapters: lookup by MAC, config-fetch records, and unknown adapters waiting to be
assigned. (Their lamps and the lamp history are in ``lamp_history``.)
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from switch.store.adapter_models import ADAPTER_MODELS, MODELS
from switch.store.crypto import CTX_ADAPTER_SECRET, SecretBox
from switch.store.engine import SessionFactory, write_session
from switch.store.models import Adapter, ConfigFetch, UnclaimedAdapter

__all__ = [
    "AdapterInfo",
    "ConfigFetchInfo",
    "UnclaimedInfo",
    "assign_unclaimed",
    "create_adapter",
    "format_mac",
    "get_adapter",
    "get_adapter_by_mac",
    "get_provisioning_secret",
    "list_config_fetches",
    "list_unclaimed",
    "new_provisioning_secret",
    "normalise_mac",
    "record_config_fetch",
    "record_unclaimed",
]

_MAC_FORMS = (
    re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}"),  # 00:0e:08:ab:cd:01
    re.compile(r"[0-9a-f]{2}(-[0-9a-f]{2}){5}"),  # 00-0e-08-ab-cd-01 (Windows)
    re.compile(r"[0-9a-f]{4}(\.[0-9a-f]{4}){2}"),  # 000e.08ab.cd01 (Cisco)
    re.compile(r"[0-9a-f]{12}"),  # 000e08abcd01 (labels, provisioning URLs)
)


def normalise_mac(text: str) -> str:
    """Any common MAC notation → 12 lower-case hex digits. Raises ValueError."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a MAC address")
    candidate = text.strip().lower()
    if not any(form.fullmatch(candidate) for form in _MAC_FORMS):
        raise ValueError(f"{text!r} is not a MAC address")
    return re.sub(r"[:.\-]", "", candidate)


def format_mac(mac: str) -> str:
    """``000e08abcd01`` → ``00:0e:08:ab:cd:01`` (how support reads it off the label)."""
    m = normalise_mac(mac)
    return ":".join(m[i : i + 2] for i in range(0, 12, 2))


def new_provisioning_secret() -> str:
    return secrets.token_urlsafe(18)


@dataclass(frozen=True, slots=True, kw_only=True)
class AdapterInfo:
    adapter_id: int
    mac: str
    customer_id: int | None
    vendor: str
    model: str
    description: str | None
    firmware_seen: str | None
    last_config_fetch_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigFetchInfo:
    fetched_at: datetime
    remote_addr: str
    user_agent: str | None
    config_hash: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UnclaimedInfo:
    mac: str
    first_seen_at: datetime
    last_seen_at: datetime
    last_addr: str
    user_agent: str | None
    model_hint: str | None
    fetch_count: int


def _adapter_info(a: Adapter) -> AdapterInfo:
    return AdapterInfo(
        adapter_id=a.id,
        mac=a.mac,
        customer_id=a.customer_id,
        vendor=a.vendor,
        model=a.model,
        description=a.description,
        firmware_seen=a.firmware_seen,
        last_config_fetch_at=a.last_config_fetch_at,
    )


async def get_adapter_by_mac(session_factory: SessionFactory, mac: str) -> AdapterInfo | None:
    """The adapter with this MAC (any notation); None if unknown or not a MAC at all
    (the config URL is attacker-controlled text, not worth an exception)."""
    try:
        key = normalise_mac(mac)
    except ValueError:
        return None
    async with session_factory() as session:
        adapter = (await session.execute(select(Adapter).where(Adapter.mac == key))).scalar_one_or_none()
        return _adapter_info(adapter) if adapter else None


async def get_adapter(session_factory: SessionFactory, adapter_id: int) -> AdapterInfo | None:
    async with session_factory() as session:
        adapter = await session.get(Adapter, adapter_id)
        return _adapter_info(adapter) if adapter else None


async def get_provisioning_secret(
    session_factory: SessionFactory, adapter_id: int, secret_box: SecretBox
) -> str | None:
    async with session_factory() as session:
        enc = (
            await session.execute(select(Adapter.provisioning_secret_enc).where(Adapter.id == adapter_id))
        ).scalar_one_or_none()
    return secret_box.decrypt(enc, context=CTX_ADAPTER_SECRET) if enc is not None else None


def _check_model(model: str) -> str:
    key = model.strip().lower()
    if key not in MODELS:
        raise ValueError(f"unknown adapter model {model!r}; supported: {', '.join(ADAPTER_MODELS)}")
    return key


async def create_adapter(
    session_factory: SessionFactory,
    mac: str,
    model: str,
    secret_box: SecretBox,
    *,
    customer_id: int | None = None,
    description: str | None = None,
) -> AdapterInfo:
    """Register an adapter with a fresh provisioning secret; clears any unclaimed
    record of the MAC. Raises ValueError for a bad MAC/model or a MAC already known."""
    key, model_key = normalise_mac(mac), _check_model(model)
    async with write_session(session_factory) as session:
        if (await session.execute(select(Adapter.id).where(Adapter.mac == key))).first():
            raise ValueError(f"adapter {format_mac(key)} already exists")
        adapter = Adapter(
            mac=key,
            model=model_key,
            vendor=MODELS[model_key].vendor_name,
            customer_id=customer_id,
            description=description,
            provisioning_secret_enc=secret_box.encrypt(new_provisioning_secret(), context=CTX_ADAPTER_SECRET),
        )
        session.add(adapter)
        await session.execute(delete(UnclaimedAdapter).where(UnclaimedAdapter.mac == key))
        await session.flush()
        return _adapter_info(adapter)


async def record_config_fetch(
    session_factory: SessionFactory,
    adapter_id: int,
    *,
    at: datetime,
    remote_addr: str,
    user_agent: str | None,
    config_hash: str,
    firmware: str | None = None,
    keep: int = 100,
) -> None:
    """Log one config download (the PWR lamp's evidence) and keep the last ``keep``
    per adapter: adapters re-fetch periodically, history must not grow forever."""
    async with write_session(session_factory) as session:
        adapter = await session.get(Adapter, adapter_id)
        if adapter is None:
            raise LookupError(f"no adapter {adapter_id}")
        session.add(
            ConfigFetch(
                adapter_id=adapter_id,
                fetched_at=at,
                remote_addr=remote_addr,
                user_agent=user_agent,
                config_hash=config_hash,
            )
        )
        adapter.last_config_fetch_at = at
        if firmware:
            adapter.firmware_seen = firmware
        await session.flush()
        keep_ids = (
            select(ConfigFetch.id)
            .where(ConfigFetch.adapter_id == adapter_id)
            .order_by(ConfigFetch.fetched_at.desc(), ConfigFetch.id.desc())
            .limit(keep)
        )
        await session.execute(
            delete(ConfigFetch).where(ConfigFetch.adapter_id == adapter_id, ConfigFetch.id.not_in(keep_ids))
        )


async def list_config_fetches(
    session_factory: SessionFactory, adapter_id: int, *, limit: int = 20
) -> list[ConfigFetchInfo]:
    """Newest first."""
    async with session_factory() as session:
        rows = (
            await session.execute(
                select(ConfigFetch)
                .where(ConfigFetch.adapter_id == adapter_id)
                .order_by(ConfigFetch.fetched_at.desc(), ConfigFetch.id.desc())
                .limit(limit)
            )
        ).scalars()
        return [
            ConfigFetchInfo(
                fetched_at=f.fetched_at, remote_addr=f.remote_addr, user_agent=f.user_agent, config_hash=f.config_hash
            )
            for f in rows
        ]


# ----------------------------------------------------------------------- unclaimed


async def record_unclaimed(
    session_factory: SessionFactory,
    mac: str,
    *,
    at: datetime,
    remote_addr: str,
    user_agent: str | None = None,
    model_hint: str | None = None,
) -> None:
    """Remember an unknown MAC that asked for a config (upsert, counts the requests)."""
    key = normalise_mac(mac)
    async with write_session(session_factory) as session:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(UnclaimedAdapter).values(
            mac=key,
            first_seen_at=at,
            last_seen_at=at,
            last_addr=remote_addr,
            user_agent=user_agent,
            model_hint=model_hint,
            fetch_count=1,
        )
        new = stmt.excluded
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[UnclaimedAdapter.mac],
                set_={
                    "last_seen_at": new.last_seen_at,
                    "last_addr": new.last_addr,
                    "user_agent": func.coalesce(new.user_agent, UnclaimedAdapter.user_agent),
                    "model_hint": func.coalesce(new.model_hint, UnclaimedAdapter.model_hint),
                    "fetch_count": UnclaimedAdapter.fetch_count + 1,
                },
            )
        )


async def list_unclaimed(session_factory: SessionFactory) -> list[UnclaimedInfo]:
    """Most recently seen first."""
    async with session_factory() as session:
        rows = (
            await session.execute(select(UnclaimedAdapter).order_by(UnclaimedAdapter.last_seen_at.desc()))
        ).scalars()
        return [
            UnclaimedInfo(
                mac=u.mac,
                first_seen_at=u.first_seen_at,
                last_seen_at=u.last_seen_at,
                last_addr=u.last_addr,
                user_agent=u.user_agent,
                model_hint=u.model_hint,
                fetch_count=u.fetch_count,
            )
            for u in rows
        ]


async def assign_unclaimed(
    session_factory: SessionFactory,
    mac: str,
    *,
    customer_id: int,
    secret_box: SecretBox,
    model: str | None = None,
    description: str | None = None,
) -> AdapterInfo:
    """Turn an unclaimed MAC into an adapter of ``customer_id``. The model defaults to
    the hint recorded from its request. Raises LookupError if the MAC is not
    unclaimed, ValueError if no usable model is known."""
    key = normalise_mac(mac)
    async with session_factory() as session:
        hint = (
            await session.execute(select(UnclaimedAdapter.model_hint).where(UnclaimedAdapter.mac == key))
        ).first()
    if hint is None:
        raise LookupError(f"{format_mac(key)} is not an unclaimed adapter")
    chosen = model or hint[0]
    if not chosen:
        raise ValueError(f"model of {format_mac(key)} unknown: give one")
    return await create_adapter(
        session_factory, key, chosen, secret_box, customer_id=customer_id, description=description
    )
