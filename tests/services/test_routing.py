"""Routing decisions: pure function over a snapshot; emergency first, on-net, longest prefix."""

from __future__ import annotations

import ipaddress

import pytest

from switch.services.b2bua.causes import Cause
from switch.services.lines import LineInfo
from switch.services.numbering import Normalised, NumberClass, normalise
from switch.services.routing import (
    Emergency,
    FromLine,
    FromTrunk,
    OnNet,
    Reject,
    RoutingSnapshot,
    Trunks,
    decide,
    offnet_number,
    route_key,
)
from switch.services.trunks import RouteEntry, RoutingTable, TrunkInfo


def _line(n: int, number: str, enabled: bool = True) -> LineInfo:
    return LineInfo(n, f"u{n}", number, "", "", 1, 1, enabled=enabled)


CALLER = _line(1, "+4722000001")
CALLEE = _line(2, "+4722000002")
DISABLED = _line(3, "+4722000003", enabled=False)
A = TrunkInfo(1, "carrierA", "192.0.2.1", allowed_sources=(ipaddress.ip_network("192.0.2.0/29"),))
B = TrunkInfo(2, "carrierB", "198.51.100.1")
EMERG = TrunkInfo(3, "nodnett", "203.0.113.1", emergency=True)
OFF = TrunkInfo(4, "retired", "203.0.113.99", enabled=False)
TABLE = RoutingTable(
    [A, B, EMERG, OFF],
    [
        RouteEntry(10, "+47", (1, 2)),
        RouteEntry(11, "+4782", (2,)),
        RouteEntry(12, "+46", (4,)),
        RouteEntry(13, "+1", (2, 1)),
    ],
)
LINES = {CALLER.number: CALLER, CALLEE.number: CALLEE, DISABLED.number: DISABLED}


def snap(**kw: object) -> RoutingSnapshot:
    args: dict[str, object] = {"lines_by_number": LINES, "table": TABLE}
    args.update(kw)
    return RoutingSnapshot(**args)  # type: ignore[arg-type]


def route(dialled: str, s: RoutingSnapshot | None = None, caller: FromLine | FromTrunk = FromLine(CALLER)) -> object:
    return decide(caller, normalise(dialled), s or snap())


@pytest.mark.parametrize("dialled", ["112", "110", "113", "+47112", "0047113", "tel:112"])
def test_emergency_goes_to_the_emergency_trunk_then_every_other_enabled_trunk(dialled: str) -> None:
    d = route(dialled)
    assert isinstance(d, Emergency)
    assert [t.name for t in d.trunks] == ["nodnett", "carrierA", "carrierB"]
    assert d.trunk is EMERG
    assert d.number == dialled[-3:]


def test_emergency_is_decided_before_barring_and_suspension() -> None:
    calls: list[str] = []

    def policy(line: LineInfo, n: Normalised) -> Cause | None:
        calls.append(n.dialled)
        return Cause.SUSPENDED

    s = snap(policy=policy)
    assert isinstance(route("112", s), Emergency)
    assert calls == []  # the policy was never even asked
    assert route("22000002", s) == Reject(Cause.SUSPENDED)
    assert calls == ["22000002"]


def test_dead_trunks_go_last_for_emergency_but_are_never_dropped() -> None:
    d = route("112", snap(dead_trunks={3, 1}))
    assert isinstance(d, Emergency)
    assert [t.name for t in d.trunks] == ["nodnett", "carrierB", "carrierA"]


def test_emergency_without_any_enabled_trunk() -> None:
    s = snap(table=RoutingTable([OFF], []))
    assert route("112", s) == Reject(Cause.EMERGENCY_UNAVAILABLE)
    assert Reject(Cause.EMERGENCY_UNAVAILABLE).status == 503


@pytest.mark.parametrize("dialled", ["22000002", "+4722000002", "004722000002", "4722000002", "22 00 00 02"])
def test_on_net_numbers_in_every_dialling_form(dialled: str) -> None:
    assert route(dialled) == OnNet(CALLEE)


def test_a_disabled_line_is_not_in_use() -> None:
    d = route("22000003")
    assert d == Reject(Cause.NUMBER_NOT_IN_USE) and isinstance(d, Reject) and d.status == 404


def test_longest_prefix_wins_and_trunk_order_is_kept() -> None:
    d = route("82012345")
    assert isinstance(d, Trunks)
    assert ([t.name for t in d.trunks], d.prefix, d.route_id, d.number) == (["carrierB"], "+4782", 11, "+4782012345")
    d = route("91234567")
    assert isinstance(d, Trunks)
    assert ([t.name for t in d.trunks], d.prefix) == (["carrierA", "carrierB"], "+47")
    d = route("0012125550100")
    assert isinstance(d, Trunks)
    assert ([t.name for t in d.trunks], d.prefix, d.number) == (["carrierB", "carrierA"], "+1", "+12125550100")


def test_dead_trunks_move_to_the_end_of_the_failover_list() -> None:
    d = route("91234567", snap(dead_trunks={1}))
    assert isinstance(d, Trunks)
    assert [t.name for t in d.trunks] == ["carrierB", "carrierA"]


def test_short_codes_ride_the_national_route_as_dialled() -> None:
    d = route("1881")
    assert isinstance(d, Trunks)
    assert (d.prefix, d.number) == ("+47", "1881")


def test_no_route_and_a_route_whose_trunks_are_all_disabled() -> None:
    assert route("+4420794600000") == Reject(Cause.NO_ROUTE)
    d = route("+46812345678")
    assert d == Reject(Cause.CONGESTION)


@pytest.mark.parametrize(
    ("dialled", "cause", "status"),
    [
        ("2200", Cause.INCOMPLETE_NUMBER, 484),
        ("9123456", Cause.INCOMPLETE_NUMBER, 484),
        ("abc", Cause.INVALID_NUMBER, 404),
        ("*21*22000002#", Cause.INVALID_NUMBER, 404),
        ("00479123", Cause.INVALID_NUMBER, 404),
    ],
)
def test_invalid_numbers(dialled: str, cause: Cause, status: int) -> None:
    d = route(dialled)
    assert isinstance(d, Reject)
    assert (d.cause, d.status) == (cause, status)


def test_calls_from_a_trunk_only_reach_our_lines() -> None:
    assert route("+4722000002", caller=FromTrunk(A)) == OnNet(CALLEE)
    assert route("22000002", caller=FromTrunk(A)) == OnNet(CALLEE)
    # never transit back out to a carrier, not even for emergency numbers
    assert route("91234567", caller=FromTrunk(A)) == Reject(Cause.NUMBER_NOT_IN_USE)
    assert route("112", caller=FromTrunk(A)) == Reject(Cause.NUMBER_NOT_IN_USE)
    assert route("22000003", caller=FromTrunk(A)) == Reject(Cause.NUMBER_NOT_IN_USE)


def test_route_key_and_offnet_number() -> None:
    assert route_key(normalise("22000002")) == "4722000002"
    assert route_key(normalise("1881")) == "471881"
    assert route_key(normalise("xyz")) is None
    assert offnet_number(normalise("0046812345678")) == "+46812345678"
    assert offnet_number(normalise("115")) == "115"
    assert normalise("115").number_class is NumberClass.SHORT_SERVICE


def test_trunk_acl_matches_configured_cidrs_or_the_trunks_own_address() -> None:
    assert TABLE.trunk_for_source("192.0.2.5") is A
    assert TABLE.trunk_for_source("192.0.2.9") is None  # outside /29
    assert TABLE.trunk_for_source("198.51.100.1") is B  # no CIDRs: its own address
    assert TABLE.trunk_for_source("198.51.100.2") is None
    assert TABLE.trunk_for_source("203.0.113.99") is OFF  # disabled trunks still match: the caller refuses them
    assert TABLE.trunk_for_source("not-an-ip") is None
    assert TABLE.trunk_for_source("2001:db8::1") is None


def test_more_specific_acl_wins() -> None:
    wide = TrunkInfo(1, "wide", "10.0.0.1", allowed_sources=(ipaddress.ip_network("10.0.0.0/8"),))
    narrow = TrunkInfo(2, "narrow", "10.1.2.3", allowed_sources=(ipaddress.ip_network("10.1.2.0/24"),))
    table = RoutingTable([wide, narrow], [])
    assert table.trunk_for_source("10.1.2.7") is narrow
    assert table.trunk_for_source("10.9.9.9") is wide


def test_request_uri_for_a_trunk() -> None:
    assert A.request_uri("+4791234567") == "sip:+4791234567@192.0.2.1:5060"
    tcp = TrunkInfo(5, "t", "2001:db8::5", port=5080, transport="tcp")
    assert tcp.request_uri("112") == "sip:112@[2001:db8::5]:5080;transport=tcp"


def test_route_prefixes_must_be_e164() -> None:
    with pytest.raises(ValueError):
        RoutingTable([], [RouteEntry(1, "47", (1,))])
