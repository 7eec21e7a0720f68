"""Periodic: the one start/stop loop every background job of the switch runs on."""

from __future__ import annotations

import asyncio
import logging

import pytest

from switch.services.periodic import Periodic


async def test_runs_every_interval_until_stopped_and_stop_waits_for_the_end() -> None:
    runs: list[float] = []
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def step() -> None:
        runs.append(loop.time() - started)

    job = Periodic("probe", step, 0.05)
    job.start()
    job.start()  # a second start while running changes nothing
    await asyncio.sleep(0.28)
    await job.stop()
    assert not job.running
    count = len(runs)
    assert 4 <= count <= 6, runs
    assert runs[0] >= 0.045  # the first step after one interval
    await asyncio.sleep(0.12)
    assert len(runs) == count  # nothing after stop
    await job.stop()  # stopping twice is fine


async def test_immediate_runs_the_first_step_at_once() -> None:
    ran = asyncio.Event()

    async def step() -> None:
        ran.set()

    job = Periodic("probe", step, 10.0, immediate=True)
    job.start()
    await asyncio.wait_for(ran.wait(), 0.5)
    await job.stop()


async def test_interval_zero_is_off() -> None:
    async def step() -> None:
        raise AssertionError("must not run")

    job = Periodic("probe", step, 0.0, immediate=True)
    job.start()
    assert not job.running
    await asyncio.sleep(0.02)
    await job.stop()


async def test_a_failing_step_is_logged_and_the_job_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database hiccup")

    caplog.set_level(logging.ERROR, logger="switch.services.periodic")
    job = Periodic("trunk reload", step, 0.02)
    job.start()
    await asyncio.sleep(0.15)
    await job.stop()
    assert calls >= 3
    failed = [r for r in caplog.records if r.getMessage() == "trunk reload failed"]
    assert len(failed) == 1 and failed[0].exc_info is not None


async def test_the_step_may_ask_for_its_next_delay() -> None:
    """A qualify round spreads its pings over the interval and asks for the next round at once (0)."""
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def step() -> float | None:
        times.append(loop.time())
        await asyncio.sleep(0.01)
        return 0.0 if len(times) < 3 else None

    job = Periodic("qualify", step, 10.0, immediate=True)
    job.start()
    await asyncio.sleep(0.15)
    await job.stop()
    assert len(times) == 3  # three rounds back to back, then one interval (10 s) to wait
    assert times[2] - times[0] < 0.1
