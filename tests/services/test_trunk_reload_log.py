"""The trunk table reloads every 30 s; its "no emergency trunk" warning is said when it becomes true, not each time."""

from __future__ import annotations

import logging

import pytest

from switch.services.trunks import TrunkService
from switch.store.repo_trunks import RouteRecord, TrunkRecord


def _trunk(emergency: bool, enabled: bool = True) -> TrunkRecord:
    return TrunkRecord(
        trunk_id=1, name="carrier", host="192.0.2.10", port=5060, transport="udp", username=None, password=None,
        allowed_sources=("192.0.2.10",), emergency=emergency, enabled=enabled,
    )


async def test_missing_emergency_trunk_is_warned_once_per_change(caplog: pytest.LogCaptureFixture) -> None:
    state = {"trunks": [_trunk(emergency=False)]}

    async def load() -> tuple[list[TrunkRecord], list[RouteRecord]]:
        return state["trunks"], []

    service = TrunkService(load)
    caplog.set_level(logging.INFO, logger="switch.services.trunks")

    def said(text: str) -> int:
        return sum(text in r.getMessage() for r in caplog.records)

    for _ in range(3):
        await service.reload()
    assert said("no enabled emergency trunk") == 1 and service.has_emergency_trunk is False

    state["trunks"] = [_trunk(emergency=True)]
    await service.reload()
    await service.reload()
    assert said("emergency trunk enabled again") == 1 and service.has_emergency_trunk is True

    state["trunks"] = [_trunk(emergency=True, enabled=False)]  # disabled counts as missing
    await service.reload()
    await service.reload()
    assert said("no enabled emergency trunk") == 2


async def test_an_unchanged_reload_keeps_the_table_and_a_change_replaces_it() -> None:
    """Every 30 s: the same rows and addresses keep the table (and its carriers' digest clients); a new
    row, or DNS answering another address, builds a new one."""
    state = {"trunks": [_trunk(emergency=True)], "address": "192.0.2.10"}

    async def load() -> tuple[list[TrunkRecord], list[RouteRecord]]:
        return state["trunks"], [RouteRecord(route_id=1, prefix="+47", trunk_ids=(1,), enabled=True)]

    async def resolve(host: str, port: int) -> str:
        return str(state["address"])

    service = TrunkService(load, resolve=resolve)
    first = await service.reload()
    assert await service.reload() is first
    state["address"] = "192.0.2.11"
    second = await service.reload()
    assert second is not first and second.trunks[1].address == "192.0.2.11"
    state["trunks"] = [_trunk(emergency=False)]
    third = await service.reload()
    assert third is not second and not third.trunks[1].emergency
    assert await service.reload() is third
