"""The descriptor limit split between SIP over TCP, HTTP and a reserve (switch/transport/tcp.py)."""

from __future__ import annotations

import resource

import pytest

from switch.transport.tcp import OTHER_RESERVE, descriptor_limit, split_descriptors


@pytest.mark.parametrize("limit", [256, 1024, 1500, 2048, 20_000, 1 << 20])
def test_both_budgets_and_the_reserve_fit_in_the_limit(limit: int) -> None:
    http, sip = split_descriptors(limit, 1024)
    assert http >= 16 and sip >= 16
    assert http + sip + min(OTHER_RESERVE, limit // 4) <= limit


def test_a_roomy_limit_gives_http_what_it_asks_and_sip_the_rest() -> None:
    assert split_descriptors(20_000, 1024) == (1024, 20_000 - 1024 - OTHER_RESERVE)
    assert split_descriptors(20_000, 6, 4) == (6, 4)  # small caps asked for are kept (tests use them)


def test_the_soft_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))
        assert descriptor_limit() == want
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == want
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
