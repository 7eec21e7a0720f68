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
