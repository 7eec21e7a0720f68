"""One INFO line when a line becomes unreachable (and when it is reachable again), none per ping."""

from __future__ import annotations

import asyncio
import logging

import pytest

from .test_adapter_status import _bind, _setup


async def test_unreachable_and_back_are_logged_once_each(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "switch.services.adapter_status")
    now = [1_700_000_000.0]
    status, loc, _ = await _setup(now)
    b = _bind(1, now[0])
    loc.replace(1, [b], lambda e: None)
    await asyncio.sleep(0.01)
    for rtt in (0.004, None, None, None, None, None, 0.003, 0.002):
        status.qualify_result(b, rtt)
    lines = [r.getMessage() for r in caplog.records if r.name == "switch.services.adapter_status"]
    assert lines == [
        "line +4722000001 unreachable: 3 pings to 127.0.0.1:5061 unanswered",
        "line +4722000001 reachable again at 127.0.0.1:5061",
    ]
    await loc.close()
