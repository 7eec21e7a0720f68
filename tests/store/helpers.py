"""Direct row builders for repository tests (independent of the importer)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, text

from switch.store import models as m
from switch.store.base import Base
from switch.store.crypto import CTX_ADAPTER_SECRET, SecretBox
from switch.store.engine import SessionFactory, write_session
from switch.store.repo_lines import apply_secret


async def add_line(
    sf: SessionFactory,
    box: SecretBox,
    realm: str,
    *,
    customer: str = "C1001",
    mac: str = "000e08abcd01",
    port: int = 1,
    number: str | None = "+4722000001",
    auth_user: str = "22000001",
    password: str = "Tel1-secret-01",
    language: m.Language = m.Language.NB,
) -> int:
    """Create (or reuse) customer and adapter, add one line; returns the line id."""
    async with write_session(sf) as s:
        # Only the id is read (and only set columns written): the helper also fills databases at old revisions.
        cid = (await s.execute(select(m.Customer.id).where(m.Customer.external_id == customer))).scalar_one_or_none()
        if cid is None:
            done = await s.execute(insert(m.Customer.__table__).values(external_id=customer, name=f"Customer {customer}"))
            cid = done.inserted_primary_key[0]
        a = (await s.execute(select(m.Adapter).where(m.Adapter.mac == mac))).scalar_one_or_none()
        if a is None:
            a = m.Adapter(
                mac=mac,
                customer_id=cid,
                vendor="Cisco",
                model="spa112",
                provisioning_secret_enc=box.encrypt("prov-secret", context=CTX_ADAPTER_SECRET),
            )
            s.add(a)
            await s.flush()
        number_id = None
        if number is not None:
            n = m.Number(e164=number, customer_id=cid)
            s.add(n)
            await s.flush()
            number_id = n.id
        line = m.Line(
            customer_id=cid, adapter_id=a.id, port=port, number_id=number_id, auth_user=auth_user, language=language
        )
        apply_secret(line, password, box, realm)
        s.add(line)
        await s.flush()
        return line.id


async def snapshot(sf: SessionFactory) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, ordered: to prove that something changed nothing."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with sf() as s:
        for table in Base.metadata.sorted_tables:
            rows = (await s.execute(select(table).order_by(*table.primary_key.columns))).all()
            out[table.name] = [tuple(r) for r in rows]
    return out


async def count(sf: SessionFactory, table: str) -> int:
    async with sf() as s:
        return int((await s.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


__all__ = ["add_line", "count", "snapshot"]
