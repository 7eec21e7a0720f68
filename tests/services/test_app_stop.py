"""A clean stop writes out what is still in memory: lamp changes and ping histories.

Ping histories are otherwise written every 30 s; this fails without the write in
``switch.app.stop``. (``stop`` also closes the lamp writer before the store it writes
through; a lamp change queued in the last 50 ms before the store closed used to be lost,
a window this test does not reach.)
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from switch import app as switch_app
from switch.services.location import Binding
from switch.settings import Settings
from switch.store import models as m
from switch.store.crypto import generate_key
from switch.store.engine import make_engine, make_session_factory
from switch.store.import_validation import parse_import_document
from switch.store.importer import import_document
from tests.conftest_db import MigratedDb
from harness.ports import free_port

DOC = {"customers": [{"id": "C1001", "name": "Kari Nordmann", "language": "nb", "adapters": [
    {"mac": "00:0E:08:AB:CD:01", "model": "spa112", "lines": [
        {"port": 1, "number": "22000001", "password": "Tel1-secret-01"}]}]}]}


async def test_stop_writes_lamps_and_ping_history_queued_at_the_last_moment(migrated_db: MigratedDb) -> None:
    settings = Settings(
        sip_listen=[("127.0.0.1", free_port("both"))], http_listen=("127.0.0.1", 0), database_url=migrated_db.url,
        key=generate_key().encode(), qualify_interval=0.0, key_file="/nonexistent/never-read.key",
    )
    services = await switch_app.start(settings)
    stopped = False
    try:
        await import_document(services.session_factory, parse_import_document(DOC), services.secret_box,
                              settings.effective_realm())
        await services.lines.reload()
        [line] = services.lines.by_id.values()
        assert line.adapter_id is not None
        committed: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        b = Binding(line.line_id, "sip:22000001@192.0.2.1:5060", 2e9, "c", 1, "192.0.2.1", 5060, "udp")
        services.location.replace(line.line_id, [b], committed.set_result)
        assert await committed is None
        services.status.config_fetched(line.adapter_id)  # PWR turns ok: a lamp change, queued
        services.status.qualify_result(b, 0.004)  # a ping history, not yet written
        await switch_app.stop(services)
        stopped = True
    finally:
        if not stopped:
            await switch_app.stop(services)

    engine = make_engine(migrated_db.url)
    try:
        async with make_session_factory(engine)() as s:
            lamps = {str(getattr(r.lamp, "value", r.lamp)): str(getattr(r.state, "value", r.state))
                     for r in (await s.execute(select(m.AdapterLamp))).scalars()}
            stats = (await s.execute(select(m.QualifyStats))).scalars().all()
    finally:
        await engine.dispose()
    assert lamps.get("PWR") == "ok", lamps
    assert [(q.sent, q.last_rtt_ms, q.history) for q in stats] == [(1, 4.0, [4.0])]

