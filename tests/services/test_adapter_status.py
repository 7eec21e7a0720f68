"""Lamps computed from evidence: the reasons support reads must be exact."""

from __future__ import annotations

import asyncio

from switch.services.adapter_status import AdapterStatusService, Lamp
from switch.services.lines import LineDirectory, LineInfo
from switch.services.location import Binding, LineChange, LocationService


def _line(line_id: int, port: int, adapter: int = 10) -> LineInfo:
    return LineInfo(line_id, f"u{line_id}", f"+472200000{line_id}", "h", "h", adapter, port)


async def _setup(now: list[float]) -> tuple[AdapterStatusService, LocationService, list[tuple[int, str, Lamp | None, Lamp]]]:
    async def load() -> list[LineInfo]:
        return [_line(1, 1), _line(2, 2)]

    lines = LineDirectory(load)
    await lines.reload()

    async def write(changes: list[LineChange]) -> None:
        return None

    loc = LocationService(write, clock=lambda: now[0])
    events: list[tuple[int, str, Lamp | None, Lamp]] = []
    status = AdapterStatusService(lines, loc, clock=lambda: now[0], persist=events.extend)
    loc.start([], listeners=(status.bindings_changed,))
    status.start()
    return status, loc, events


def _bind(line_id: int, now: float, port: int = 5061) -> Binding:
    return Binding(line_id, f"sip:u{line_id}@127.0.0.1:{port}", now + 3600, "c", 1, "127.0.0.1", port, "udp")


async def test_never_provisioned_adapter_is_dark() -> None:
    now = [1_700_000_000.0]
    status, loc, _ = await _setup(now)
    lamps = status.status(10)
    assert {k: v.state for k, v in lamps.items()} == {"pwr": "off", "wan": "off", "tel1": "off", "tel2": "off"}
    assert lamps["tel1"].reason == "never provisioned"
    await loc.close()


async def test_registration_turns_lamps_on_and_expiry_is_explained() -> None:
    now = [1_700_000_000.0]
    status, loc, events = await _setup(now)
    status.config_fetched(10)
    for lid in (1, 2):
        loc.replace(lid, [_bind(lid, now[0], 5060 + lid)], lambda e: None)
    await asyncio.sleep(0.01)
    lamps = status.status(10)
    assert {k: v.state for k, v in lamps.items()} == {"pwr": "ok", "wan": "ok", "tel1": "ok", "tel2": "ok"}
    assert lamps["tel1"].reason == "registered from 127.0.0.1:5061 (udp)"
    # the registration of line 1 runs out
    now[0] += 3600 + 14 * 60
    await loc.sweep()
    lamps = status.status(10)
    assert lamps["tel1"].state == "off"
    assert lamps["tel1"].reason == "registration expired 14 min ago"
    assert any(name == "tel1" and new.state == "off" for _, name, _, new in events)
    await loc.close()


async def test_one_lost_ping_does_not_flip_wan() -> None:
    now = [1_700_000_000.0]
    status, loc, _ = await _setup(now)
    b = _bind(1, now[0])
    loc.replace(1, [b], lambda e: None)
    await asyncio.sleep(0.01)
    status.qualify_result(b, 0.004)
    status.qualify_result(b, None)
    assert status.status(10)["wan"].state == "ok"
    status.qualify_result(b, None)
    status.qualify_result(b, None)
    lamps = status.status(10)
    assert lamps["wan"].state == "warning"
    assert lamps["wan"].reason.startswith("no answer to 3 pings since ")
    assert lamps["tel1"].state == "warning"
    status.qualify_result(b, 0.003)
    assert status.status(10)["wan"].state == "ok"
    await loc.close()


async def test_wrong_password_reason_counts_attempts() -> None:
    now = [1_700_000_000.0]  # 22:13 UTC
    status, loc, _ = await _setup(now)
    line = _line(2, 2)
    for _ in range(3):
        status.register_outcome(line, "127.0.0.1", 403)
    lamps = status.status(10)
    assert lamps["tel2"].state == "off"
    assert lamps["tel2"].reason == "wrong password 3× since 22:13 UTC"
    await loc.close()


async def test_relative_reasons_stay_fresh_without_history_events() -> None:
    now = [1_700_000_000.0]
    status, loc, events = await _setup(now)
    status.config_fetched(10)
    assert status.status(10)["pwr"].reason == "last config fetch 0 s ago"
    n = len(events)
    now[0] += 600
    lamps = status.status(10)
    assert lamps["pwr"].state == "ok" and lamps["pwr"].reason == "last config fetch 10 min ago"
    assert lamps["pwr"].since == 1_700_000_000.0
    assert len(events) == n  # no event for a reason that only aged
    now[0] += 3600
    assert status.status(10)["pwr"].state == "warning"
    assert len(events) == n + 1
    await loc.close()


async def test_ping_history_is_per_binding_and_forgotten_with_it() -> None:
    """Both lines of an adapter share its NAT address but each binding keeps its own history;
    a binding that goes, or comes back from a new NAT port, takes its history (and the address) along."""
    now = [1_700_000_000.0]
    status, loc, _ = await _setup(now)
    b1, b2 = _bind(1, now[0], 5061), _bind(2, now[0], 5061)
    loc.replace(1, [b1], lambda e: None)
    loc.replace(2, [b2], lambda e: None)
    await asyncio.sleep(0.01)
    status.qualify_result(b1, 0.004)
    status.qualify_result(b2, None)
    assert status.reach[(1, b1.contact)].history == (0.004,)
    assert status.reach[(2, b2.contact)].history == (None,)
    assert sorted(k for k, _ in status.take_dirty_reach()) == [(1, b1.contact), (2, b2.contact)]
    assert status.take_dirty_reach() == []

    # Line 1 re-registers from a new NAT port: a new path, a new history.
    moved = Binding(1, b1.contact, now[0] + 3600, "c", 2, "127.0.0.1", 5099, "udp")
    loc.replace(1, [moved], lambda e: None)
    await asyncio.sleep(0.01)
    # (written out empty, so a restart does not bring the old path's history back)
    assert status.reach[(1, b1.contact)].sent == 0
    assert [(k, r.sent) for k, r in status.take_dirty_reach()] == [((1, b1.contact), 0)]
    # A ping result for the old address that arrives late is not kept.
    status.qualify_result(b1, 0.005)
    assert status.reach[(1, b1.contact)].sent == 0 and status.take_dirty_reach() == []
    assert ("127.0.0.1", 5061) in status._addr_adapter  # line 2 still uses it

    # Line 2 unregisters: its history and the now unused address are forgotten.
    status.qualify_result(b2, None)
    loc.replace(2, [], lambda e: None)
    await asyncio.sleep(0.01)
    assert (2, b2.contact) not in status.reach and status.take_dirty_reach() == []
    assert ("127.0.0.1", 5061) not in status._addr_adapter and ("127.0.0.1", 5099) in status._addr_adapter
    await loc.close()


async def test_restored_history_keeps_an_unanswering_adapter_in_warning() -> None:
    """After a restart the WAN lamp does not turn green just because the switch forgot the lost pings."""
    from switch.services.adapter_status import record_ping
    from switch.store.rows import Reachability

    now = [1_700_000_000.0]
    status, loc, _ = await _setup(now)
    b = _bind(1, now[0])
    loc.replace(1, [b], lambda e: None)
    await asyncio.sleep(0.01)
    silent = Reachability(1, b.contact)
    for i in range(4):
        silent = record_ping(silent, None if i else 0.004, now[0] - 120 + 30 * i)
    status.restore_reach((1, b.contact), silent)
    lamps = status.status(10)
    assert lamps["wan"].state == "warning" and lamps["wan"].reason.startswith("no answer to 3 pings since ")
    await loc.close()
