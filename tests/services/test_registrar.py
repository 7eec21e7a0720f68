"""The registrar on its own: RFC 3261 §10.3 rule by rule, with real parts around it.

Every REGISTER here is text parsed by the switch's real parser; authentication is the
real ``Authenticator`` over a real ``LineDirectory``; bindings go through a real
``LocationService`` (group committer included) into an in-memory table that plays the
database, so "the 200 goes out only after the write" can be watched. Digest answers are
computed here with hashlib from the RFC 2617/7616 formulas, not with the switch's
digest client. The clock is a fake one shared by the registrar, the authenticator's
nonces and the location service, so expiry is exact and nothing sleeps.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from switch.services.auth import Authenticator
from switch.services.lines import LineDirectory, LineInfo
from switch.services.location import Binding, LineChange, LocationService
from switch.services.registrar import Registrar, RegistrarConfig
from switch.settings import Settings
from switch.sip.message import Request, Response
from switch.sip.parser import parse_message
from switch.sip.transaction.events import Peer, RequestReceived

DOMAIN = "sip.example.no"
REALM = DOMAIN
ALICE = ("22000001", "Tel1-secret-01")  # line 1 (port 1 of adapter 10)
BOB = ("22000002", "Tel2-secret-02")  # line 2 (port 2)
T0 = 1_800_000_000.0
MIN_EXPIRES, MAX_EXPIRES, DEFAULT_EXPIRES, MAX_CONTACTS = 60, 7200, 3600, 3


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - the digest algorithm under test


def _line(line_id: int, user: str, password: str, port: int) -> LineInfo:
    return LineInfo(
        line_id=line_id, auth_user=user, number=f"+47{user}", ha1_md5=md5(f"{user}:{REALM}:{password}"),
        ha1_sha256=hashlib.sha256(f"{user}:{REALM}:{password}".encode()).hexdigest(), adapter_id=10, port=port,
    )


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Store:
    """The database as the location service sees it: the last committed binding set per line."""

    rows: dict[int, list[Binding]] = field(default_factory=dict)
    writes: int = 0
    fail: bool = False
    gate: asyncio.Event | None = None

    async def write_batch(self, changes: list[LineChange]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ConnectionError("database went away")
        self.writes += 1
        for ch in changes:
            if ch.bindings:
                self.rows[ch.line_id] = list(ch.bindings)
            else:
                self.rows.pop(ch.line_id, None)

    def contacts(self, line_id: int) -> list[str]:
        return sorted(b.contact for b in self.rows.get(line_id, []))


@dataclass
class Switch:
    registrar: Registrar
    location: LocationService
    store: Store
    clock: Clock
    replies: list[tuple[str, Response, bool]]  # (tid, response, sent statelessly)
    outcomes: list[tuple[str | None, str, int]]  # observers: (auth user, source, status)

    async def send(self, raw: str, source: Peer) -> Response:
        """One REGISTER in, the one response it gets out (after the commit, if any)."""
        req = parse_message(raw.encode())
        assert isinstance(req, Request)
        tid = "t" + secrets.token_hex(4)
        self.registrar.on_register(RequestReceived(tid=tid, request=req, source=source))
        for _ in range(200):
            got = [r for t, r, _ in self.replies if t == tid]
            if got:
                assert len(got) == 1, got
                return got[0]
            await asyncio.sleep(0.001)
        raise AssertionError("no response")


@pytest.fixture
async def switch() -> AsyncIterator[Switch]:
    clock = Clock()
    store = Store()
    lines = LineDirectory(lambda: _lines([_line(1, *ALICE, 1), _line(2, *BOB, 2)]))
    await lines.reload()
    auth = Authenticator(realm=REALM, secret=b"n" * 32, lookup=lines.credential, algorithms=("SHA-256", "MD5"),
                         md5_only_agents=Settings().md5_only_agents)
    auth.served = lambda uri: uri.host.lower() == DOMAIN
    location = LocationService(store.write_batch, clock=clock)
    location.start([])
    replies: list[tuple[str, Response, bool]] = []
    outcomes: list[tuple[str | None, str, int]] = []
    registrar = Registrar(
        config=RegistrarConfig(domains=frozenset({DOMAIN}), min_expires=MIN_EXPIRES, max_expires=MAX_EXPIRES,
                               default_expires=DEFAULT_EXPIRES, max_contacts=MAX_CONTACTS),
        auth=auth, lines=lines, location=location,
        reply=lambda tid, resp: replies.append((tid, resp, False)),
        challenge_reply=lambda tid, resp: replies.append((tid, resp, True)),
        clock=clock,
    )
    registrar.observers.append(
        lambda line, host, status: outcomes.append((line.auth_user if line else None, host, status)))
    yield Switch(registrar, location, store, clock, replies, outcomes)
    await location.close()


async def _lines(lines: list[LineInfo]) -> list[LineInfo]:
    return lines


# ---------------------------------------------------------------------- the phone


def _params(challenge: str) -> dict[str, str]:
    return {k.lower(): v1 or v2 for k, v1, v2 in re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', challenge)}


@dataclass
class Phone:
    """A UA that answers challenges with hashlib, reusing its nonce with a rising nc like real ATAs."""

    switch: Switch
    user: str
    password: str
    host: str = "192.0.2.10"
    port: int = 5060
    call_id: str = field(default_factory=lambda: secrets.token_hex(8) + "@192.0.2.10")
    cseq: int = 0
    challenge: dict[str, str] | None = None
    nc: int = 0

    @property
    def source(self) -> Peer:
        return Peer("udp", self.host, self.port)

    def _authorization(self, uri: str) -> str:
        ch = self.challenge
        assert ch is not None
        self.nc += 1
        cnonce = secrets.token_hex(8)
        algorithm = ch.get("algorithm", "MD5").upper()
        h = md5 if algorithm == "MD5" else (lambda s: hashlib.sha256(s.encode()).hexdigest())
        ha1 = h(f"{self.user}:{ch['realm']}:{self.password}")
        ha2 = h(f"REGISTER:{uri}")
        response = h(f"{ha1}:{ch['nonce']}:{self.nc:08x}:{cnonce}:auth:{ha2}")
        return (f'Digest username="{self.user}", realm="{ch["realm"]}", nonce="{ch["nonce"]}", uri="{uri}", '
                f'response="{response}", algorithm={algorithm}, qop=auth, nc={self.nc:08x}, cnonce="{cnonce}"')

    def request(self, contacts: list[str], *, expires: int | None = None, cseq: int | None = None,
                call_id: str | None = None, to_user: str | None = None, domain: str = DOMAIN,
                authorization: str | None = None, extra: tuple[str, ...] = ()) -> str:
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        else:
            self.cseq = max(self.cseq, cseq)
        uri = f"sip:{domain}"
        lines = [
            f"REGISTER {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK{secrets.token_hex(6)};rport",
            "Max-Forwards: 70",
            f"From: <sip:{self.user}@{domain}>;tag={secrets.token_hex(4)}",
            f"To: <sip:{to_user or self.user}@{domain}>",
            f"Call-ID: {call_id or self.call_id}",
            f"CSeq: {cseq} REGISTER",
            *(f"Contact: {c}" for c in contacts),
            *([f"Expires: {expires}"] if expires is not None else []),
            "User-Agent: Cisco/SPA112-1.4.1(SR5)",
            *([f"Authorization: {authorization}"] if authorization else []),
            *extra,
            "Content-Length: 0",
        ]
        return "\r\n".join(lines) + "\r\n\r\n"

    async def register(self, *contacts: str, expires: int | None = None, cseq: int | None = None,
                       call_id: str | None = None, to_user: str | None = None, domain: str = DOMAIN,
                       extra: tuple[str, ...] = ()) -> Response:
        """Send a REGISTER (credentials up front once a challenge is known); on 401, answer it once."""
        def build(cseq: int | None, authorization: str | None) -> str:
            return self.request(list(contacts), expires=expires, cseq=cseq, call_id=call_id, to_user=to_user,
                                domain=domain, authorization=authorization, extra=extra)

        auth = self._authorization(f"sip:{domain}") if self.challenge else None
        resp = await self.switch.send(build(cseq, auth), self.source)
        if resp.status != 401:
            return resp
        md5_challenge = [v for v in resp.headers.get_lines("WWW-Authenticate") if "algorithm=MD5" in v]
        self.challenge, self.nc = _params(md5_challenge[0]), 0
        auth = self._authorization(f"sip:{domain}")
        return await self.switch.send(build(None if cseq is None else cseq + 1, auth), self.source)


def _contacts(resp: Response) -> dict[str, int]:
    """The 200's Contact list: URI → the expires it states."""
    out = {}
    for value in resp.headers.get_lines("Contact"):
        for part in re.findall(r"<([^>]+)>;expires=(\d+)", value):
            out[part[0]] = int(part[1])
    return out


def alice(sw: Switch, **kw: object) -> Phone:
    return Phone(sw, *ALICE, **kw)  # type: ignore[arg-type]


A1 = "<sip:22000001@10.0.0.5:5060>"
A1_URI = "sip:22000001@10.0.0.5:5060"


# ------------------------------------------------------------------ domain and auth


async def test_a_domain_we_do_not_serve_is_403_before_any_challenge(switch: Switch) -> None:
    resp = await alice(switch).register(A1, domain="other.example.com")
    assert (resp.status, resp.reason) == (403, "Domain Not Served")
    assert "WWW-Authenticate" not in resp.headers and switch.store.writes == 0


async def test_first_register_is_challenged_statelessly_then_registered(switch: Switch) -> None:
    phone = alice(switch)
    first = await switch.send(phone.request([A1]), phone.source)
    assert first.status == 401
    challenges = first.headers.get_lines("WWW-Authenticate")
    # MD5 alone for the SPA112's User-Agent (it gives up on SHA-256); every challenge asks qop=auth.
    assert [_params(c)["algorithm"] for c in challenges] == ["MD5"]
    assert all(_params(c)["realm"] == REALM and _params(c)["qop"] == "auth" for c in challenges)
    assert switch.replies[-1][2] is True, "a 401 goes out without a transaction (RFC 3261 §8.2.7)"
    assert switch.store.writes == 0 and switch.location.bindings(1) == []

    ok = await phone.register(A1)
    assert ok.status == 200 and switch.replies[-1][2] is False
    assert _contacts(ok) == {A1_URI: DEFAULT_EXPIRES}
    assert ok.headers.get("Date") == "Fri, 15 Jan 2027 08:00:00 GMT"  # §20.17, adapters set their clock by it
    assert switch.store.contacts(1) == [A1_URI]
    assert switch.outcomes[-1] == ("22000001", "", 200)


async def test_the_200_waits_for_the_binding_to_be_written(switch: Switch) -> None:
    phone = alice(switch)
    await switch.send(phone.request([A1]), phone.source)  # learn the nonce
    phone.challenge = _params(switch.replies[-1][1].headers.get_lines("WWW-Authenticate")[0])
    switch.store.gate = asyncio.Event()
    task = asyncio.create_task(phone.register(A1))
    await asyncio.sleep(0.05)
    assert not task.done() and switch.store.rows == {}, "a 200 must not promise a binding the database lacks"
    switch.store.gate.set()
    assert (await task).status == 200
    assert switch.store.contacts(1) == [A1_URI]


async def test_a_failed_write_is_500_and_the_old_bindings_stay(switch: Switch) -> None:
    phone = alice(switch)
    assert (await phone.register(A1)).status == 200
    switch.store.fail = True
    resp = await phone.register("<sip:22000001@10.0.0.6:5060>")
    assert (resp.status, resp.reason) == (500, "Binding Not Stored")
    assert [b.contact for b in switch.location.bindings(1)] == [A1_URI]


async def test_wrong_password_is_403_and_stores_nothing(switch: Switch) -> None:
    resp = await Phone(switch, ALICE[0], "guess").register(A1)
    assert resp.status == 403 and "WWW-Authenticate" not in resp.headers
    assert switch.store.writes == 0
    assert switch.outcomes[-1][1:] == ("192.0.2.10", 403)


async def test_an_unknown_user_gets_the_same_challenge_and_the_same_403(switch: Switch) -> None:
    """No user enumeration: nothing in either answer says whether the user exists."""
    known, unknown = Phone(switch, ALICE[0], "guess"), Phone(switch, "22999999", "guess", host="192.0.2.11")
    ch_known = await switch.send(known.request([A1]), known.source)
    ch_unknown = await switch.send(unknown.request(["<sip:22999999@10.0.0.9>"]), unknown.source)

    def shape(resp: Response) -> list[tuple[str, str]]:
        """Every header, with what must differ (tags, nonces, Call-ID, branches) masked."""
        masked = []
        for name, value in resp.headers:
            value = re.sub(r'nonce="[^"]+"', 'nonce="*"', value)
            value = re.sub(r"(tag|branch)=[^;>\s]+", r"\1=*", value)
            value = re.sub(r"2200000\d|22999999|10\.0\.0\.\d|192\.0\.2\.1\d|[0-9a-f]{16}@", "*", value)
            masked.append((name.lower(), value))
        return masked

    assert (ch_known.status, ch_unknown.status) == (401, 401)
    assert shape(ch_known) == shape(ch_unknown)
    final_known = await known.register(A1)
    final_unknown = await unknown.register("<sip:22999999@10.0.0.9>")
    assert (final_known.status, final_known.reason) == (403, "Forbidden")
    assert (final_unknown.status, final_unknown.reason) == (403, "Forbidden")
    assert shape(final_known) == shape(final_unknown)


async def test_a_line_may_register_only_its_own_aor(switch: Switch) -> None:
    phone = alice(switch)
    resp = await phone.register(A1, to_user=BOB[0])
    assert (resp.status, resp.reason) == (403, "Not Allowed To Register This AOR")
    assert switch.store.writes == 0
    # the same AOR in E.164 form is the line's own
    assert (await phone.register(A1, to_user="+4722000001")).status == 200


# ------------------------------------------------------------------------ expires


async def test_expires_comes_from_the_contact_then_the_header_then_the_default(switch: Switch) -> None:
    phone = alice(switch)
    ok = await phone.register(A1, "<sip:22000001@10.0.0.6>;expires=300", expires=600)
    assert _contacts(ok) == {A1_URI: 600, "sip:22000001@10.0.0.6": 300}
    ok = await phone.register("<sip:22000001@10.0.0.7>")
    assert _contacts(ok)["sip:22000001@10.0.0.7"] == DEFAULT_EXPIRES


async def test_too_long_is_shortened_to_the_maximum(switch: Switch) -> None:
    ok = await alice(switch).register(A1, expires=86400)
    assert _contacts(ok) == {A1_URI: MAX_EXPIRES}
    (b,) = switch.store.rows[1]
    assert b.expires_at == T0 + MAX_EXPIRES


@pytest.mark.parametrize("how", ["header", "contact"])
async def test_too_short_is_423_with_min_expires(switch: Switch, how: str) -> None:
    phone = alice(switch)
    if how == "header":
        resp = await phone.register(A1, expires=MIN_EXPIRES - 1)
    else:
        resp = await phone.register(f"{A1};expires=1")
    assert resp.status == 423
    assert resp.headers.get("Min-Expires") == str(MIN_EXPIRES)
    assert switch.store.writes == 0
    ok = await phone.register(A1, expires=MIN_EXPIRES)  # the retry a UA makes with the minimum
    assert _contacts(ok) == {A1_URI: MIN_EXPIRES}


async def test_the_200_counts_down_and_an_expired_binding_is_gone(switch: Switch) -> None:
    phone = alice(switch)
    await phone.register(A1, expires=120)
    switch.clock.now += 100
    query = await phone.register()
    assert _contacts(query) == {A1_URI: 20}
    switch.clock.now += 21
    assert _contacts(await phone.register()) == {}
    assert switch.location.bindings(1) == []


async def test_expires_zero_removes_one_contact_and_keeps_the_others(switch: Switch) -> None:
    phone = alice(switch)
    await phone.register(A1, "<sip:22000001@10.0.0.6>")
    ok = await phone.register(f"{A1};expires=0")
    assert _contacts(ok) == {"sip:22000001@10.0.0.6": DEFAULT_EXPIRES}
    assert switch.store.contacts(1) == ["sip:22000001@10.0.0.6"]


async def test_a_refresh_keeps_the_binding_and_moves_its_expiry(switch: Switch) -> None:
    phone = alice(switch)
    await phone.register(A1, expires=600)
    switch.clock.now += 300
    ok = await phone.register(A1, expires=600)
    assert _contacts(ok) == {A1_URI: 600}
    (b,) = switch.store.rows[1]
    assert (b.registered_at, b.last_seen, b.expires_at) == (T0, T0 + 300, T0 + 900)


# ----------------------------------------------------------------------- wildcard


async def test_wildcard_with_expires_zero_removes_every_contact(switch: Switch) -> None:
    phone = alice(switch)
    await phone.register(A1, "<sip:22000001@10.0.0.6>")
    other = Phone(switch, *ALICE, host="192.0.2.20")  # another device, another Call-ID
    await other.register("<sip:22000001@10.0.0.7>")
    assert len(switch.store.rows[1]) == 3
    ok = await phone.register("*", expires=0)
    assert ok.status == 200 and _contacts(ok) == {}
    assert 1 not in switch.store.rows and switch.location.bindings(1) == []


@pytest.mark.parametrize(("contacts", "expires"), [(["*"], None), (["*"], 3600), (["*", A1], 0)],
                         ids=["no-expires", "expires-3600", "with-another-contact"])
async def test_wildcard_needs_expires_zero_and_to_be_alone(switch: Switch, contacts: list[str],
                                                           expires: int | None) -> None:
    phone = alice(switch)
    await phone.register(A1)
    resp = await phone.register(*contacts, expires=expires)
    assert (resp.status, resp.reason) == (400, "Wildcard Contact Needs Expires: 0")
    assert switch.store.contacts(1) == [A1_URI]


# ---------------------------------------------------------------- Call-ID and CSeq


@pytest.mark.parametrize("delta", [0, -1])
async def test_same_call_id_with_an_old_cseq_is_refused(switch: Switch, delta: int) -> None:
    """§10.3 step 7: an older (or repeated) REGISTER of the same Call-ID must not undo a newer one."""
    phone = alice(switch)
    assert (await phone.register(A1, cseq=10, expires=600)).status == 200
    resp = await phone.register(A1, cseq=11 + delta, expires=0)
    assert (resp.status, resp.reason) == (500, "Out Of Order CSeq")
    assert switch.store.contacts(1) == [A1_URI]
    wildcard = await phone.register("*", cseq=11 + delta, expires=0)
    assert (wildcard.status, wildcard.reason) == (500, "Out Of Order CSeq")
    assert switch.store.contacts(1) == [A1_URI]
    assert (await phone.register(A1, cseq=20, expires=0)).status == 200  # a newer one does


async def test_a_new_call_id_may_start_its_cseq_anywhere(switch: Switch) -> None:
    """After a reboot an adapter has a new Call-ID and counts from 1 again."""
    phone = alice(switch)
    await phone.register(A1, cseq=500)
    rebooted = alice(switch)
    ok = await rebooted.register(A1, cseq=1, expires=1200)
    assert ok.status == 200 and _contacts(ok) == {A1_URI: 1200}
    (b,) = switch.store.rows[1]
    assert (b.call_id, b.cseq) == (rebooted.call_id, 2)  # CSeq 1 was challenged


# ------------------------------------------------------------ contacts and queries


async def test_at_most_max_contacts_and_the_oldest_give_way(switch: Switch) -> None:
    phone = alice(switch)
    for i in range(MAX_CONTACTS + 1):
        switch.clock.now += 1
        assert (await phone.register(f"<sip:22000001@10.0.0.{i}>")).status == 200
    assert switch.store.contacts(1) == [f"sip:22000001@10.0.0.{i}" for i in range(1, MAX_CONTACTS + 1)]
    # also when they come in one request: the ones already there are older
    ok = await phone.register("<sip:22000001@10.0.1.1>", "<sip:22000001@10.0.1.2>")
    assert len(_contacts(ok)) == MAX_CONTACTS
    assert {"sip:22000001@10.0.1.1", "sip:22000001@10.0.1.2"} <= set(_contacts(ok))


async def test_a_register_without_contacts_is_a_query_and_changes_nothing(switch: Switch) -> None:
    phone = alice(switch)
    await phone.register(A1, expires=600)
    writes = switch.store.writes
    switch.clock.now += 60
    resp = await phone.register()
    assert resp.status == 200 and _contacts(resp) == {A1_URI: 540}
    assert switch.store.writes == writes
    assert _contacts(await Phone(switch, *BOB).register()) == {}  # another line's bindings are its own


async def test_the_binding_remembers_where_the_register_really_came_from(switch: Switch) -> None:
    """Behind NAT the Contact names a private address; requests go to the source (RFC 3581)."""
    phone = alice(switch, host="203.0.113.7", port=40123)
    await phone.register(A1, extra=('Contact: <sip:22000001@10.0.0.5:5062>;+sip.instance="<urn:uuid:1>";reg-id=1',))
    got = {b.contact: b for b in switch.store.rows[1]}
    b = got[A1_URI]
    assert (b.received_host, b.received_port, b.transport) == ("203.0.113.7", 40123, "udp")
    assert b.user_agent == "Cisco/SPA112-1.4.1(SR5)"
    outbound = got["sip:22000001@10.0.0.5:5062"]
    assert (outbound.instance, outbound.reg_id) == ("<urn:uuid:1>", 1)


async def test_the_same_instance_from_a_new_address_replaces_its_binding(switch: Switch) -> None:
    """RFC 5626: the +sip.instance names the device; its new contact replaces the old one."""
    phone = alice(switch)
    await phone.register('<sip:22000001@10.0.0.5>;+sip.instance="<urn:uuid:a>"')
    ok = await phone.register('<sip:22000001@10.0.0.99>;+sip.instance="<urn:uuid:a>"')
    assert list(_contacts(ok)) == ["sip:22000001@10.0.0.99"]


async def test_a_bad_q_value_is_400(switch: Switch) -> None:
    resp = await alice(switch).register(f"{A1};q=high")
    assert (resp.status, resp.reason) == (400, "Bad q Value")
    assert switch.store.writes == 0


@pytest.mark.parametrize(("contact", "reason"), [
    ("<sip:22000001@10.0.0.5;expires=60", "Unterminated <URI> in '<sip:22000001@10.0.0.5;expires=60'"),
    ("<sip:22000001@10.0.0.5>;expires=abc", "Bad expires parameter: 'abc'"),
], ids=["unterminated", "bad-expires"])
async def test_a_malformed_contact_is_a_400_that_says_what_is_wrong(switch: Switch, contact: str, reason: str) -> None:
    phone = alice(switch)
    await phone.register(A1)
    resp = await phone.register(contact)
    assert (resp.status, resp.reason) == (400, reason)
    assert switch.store.contacts(1) == [A1_URI]
