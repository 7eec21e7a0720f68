"""Typed settings for the whole service, built from command-line flags and the environment.

Nothing here reads files or opens sockets; ``switch.cli`` fills a Settings and
hands it to the composition root (``switch.app``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from switch.transport.udp import DEFAULT_UDP_BUFFER

__all__ = ["Settings", "parse_hostport", "DEFAULT_DATABASE_URL"]

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///softswitch.db"


def parse_hostport(text: str, default_port: int) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT``, ``HOST`` or ``:PORT`` → (host, port)."""
    text = text.strip()
    if text.startswith("["):
        end = text.index("]")
        host, rest = text[1:end], text[end + 1 :]
        port = int(rest[1:]) if rest.startswith(":") else default_port
        return host, port
    if text.count(":") > 1:  # bare IPv6 without port
        return text, default_port
    host, _, port_s = text.partition(":")
    return host or "127.0.0.1", int(port_s) if port_s else default_port


@dataclass(slots=True)
class Settings:
    #: SIP listening addresses; each gets a UDP socket and a TCP server.
    sip_listen: list[tuple[str, int]] = field(default_factory=lambda: [("127.0.0.1", 5060)])
    #: HTTP (provisioning, operator API, UI).
    http_listen: tuple[str, int] = ("127.0.0.1", 8080)
    database_url: str = DEFAULT_DATABASE_URL
    #: SIP domains we are authoritative for, besides our own listening addresses.
    domains: list[str] = field(default_factory=list)
    #: Digest realm; defaults to the first domain, else the first listening host.
    realm: str = ""
    #: Key for secrets at rest and nonce signing. File created (0600) when absent.
    key_file: str = "softswitch.key"
    key: bytes | None = None
    # RFC 3261 timers
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    # registrar
    min_expires: int = 60
    max_expires: int = 7200
    default_expires: int = 3600
    max_contacts_per_line: int = 3
    nonce_lifetime: float = 300.0
    digest_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    #: User-Agents (regex) that give up on a SHA-256 challenge instead of using the MD5
    #: one after it: the adapters we provision, and SIPp/baresip. They get MD5 only.
    md5_only_agents: str = (
        r"^(Cisco/SPA|Linksys/|Sipura/|Grandstream HT|OBIHAI/|Obihai/|sipp|baresip)"
    )
    #: User-Agents (regex) known to skip a challenge whose algorithm they lack and use the
    #: next one (RFC 8760 §2.4): only they get SHA-256 first. Everyone else, including an
    #: agent with no User-Agent header, gets MD5 first and SHA-256 after it.
    sha256_first_agents: str = r"^(Linphone|linphone|Asterisk PBX|FreeSWITCH|MicroSIP|PJSUA|Kamailio)"
    #: overload shedding: the longest a request may wait in the UDP queue (ms; 0 = never shed)
    overload_budget_ms: float = 150.0
    #: requests per second this machine serves at least (REGISTER with its challenge = 1): the
    #: Retry-After of refused requests books their return at that rate or the busiest recent second
    overload_capacity: float = 1000.0
    tcp_max_per_source: int = 64
    #: SIP TCP connections in all; None: SIP's share of the descriptor limit (switch.transport.tcp.split_descriptors)
    tcp_max_connections: int | None = None
    #: HTTP's own connection budget (provisioning/connections.py): in all, per source address,
    #: seconds to a complete first request head, seconds an idle keep-alive connection stays,
    #: seconds from a request head to the end of its body
    http_max_connections: int = 1024
    http_max_per_source: int = 128
    http_header_timeout: float = 10.0
    http_keepalive_timeout: float = 75.0
    http_body_timeout: float = 30.0
    #: Group commit: how long the registrar may wait to gather more bindings into one commit.
    commit_window: float = 0.002
    # reachability
    qualify_interval: float = 30.0
    qualify_timeout: float = 5.0
    # flood control (per source IP); 0 disables
    rate_limit: float = 400.0
    rate_burst: float = 800.0
    # brute force (per source+user, per user, per source)
    auth_fail_threshold: int = 5
    auth_fail_window: float = 60.0
    auth_block_seconds: float = 60.0
    source_fail_threshold: int = 50
    #: UDP socket buffer in bytes (Linux doubles it for bookkeeping). It bounds the queue a burst
    #: can build: past it the kernel drops and clients retransmit. Measured (bench/README.md):
    #: 4 MiB let an overload queue for over a second, so every request was retransmitted
    #: and throughput collapsed; 512 KiB keeps the wait ~0.1 s at full load.
    udp_buffer: int = DEFAULT_UDP_BUFFER
    # TCP
    tcp_idle_timeout: float = 600.0
    # calls
    no_answer_timeout: float = 60.0
    max_call_duration: float = 4 * 3600.0
    #: a carrier that has not answered an INVITE at all by then is skipped (failover)
    trunk_setup_timeout: float = 4.0
    trunk_ping_interval: float = 30.0
    trunk_ping_timeout: float = 5.0
    # call policy (switch/services/policy)
    #: at most this many forwards per call (incoming Diversion/History-Info entries count)
    forward_hop_cap: int = 5
    #: number classes lines may forward to (on-net lines always); see NumberClass
    forward_classes: str = "fixed,mobile"
    #: numbers a soft-suspended line may still call (the operator's customer service)
    customer_service_numbers: tuple[str, ...] = ()
    #: the operator's local time zone (the fraud guard's night hours)
    policy_timezone: str = "Europe/Oslo"
    #: CDRs are committed in batches gathered over this window
    cdr_commit_window: float = 0.1
    #: rows the database refuses are appended here (JSON lines) rather than lost
    cdr_spill_file: str | None = "softswitch-cdr-spill.jsonl"
    #: rating on: every CDR is priced and the credit limit applies; off (``run --rating off``: an A/B
    #: benchmark, an operator billing elsewhere): CDRs are written without a price, no credit limit
    rating: bool = True
    #: rating: billing periods are calendar months in this zone
    billing_timezone: str = "Europe/Oslo"
    #: credit limit: a call in progress is cut when the customer's period total would pass
    #: the limit by more than this (øre); the call that crosses the limit suspends the customer
    credit_cut_margin_ore: int = 5000
    #: /metrics: a bearer token of its own (else an operator API token is needed) ...
    metrics_token: str | None = None
    #: ... or a listener of its own serving only /metrics, without a token
    metrics_listen: tuple[str, int] | None = None
    # announcements (docs/announcements.md)
    announcements: bool = True
    #: RTP ports for prompts (even ones are used; RTCP would take the odd one after)
    rtp_ports: tuple[int, int] = (20000, 20999)
    #: address the RTP sockets bind to and the SDP answer names ("": the first SIP address)
    rtp_address: str = ""
    #: prompts playing at once; past it a refusal is the plain final response (bench/bench_announce.py)
    max_announcements: int = 300
    #: causes answered with the bare status although they have a prompt (the adapter plays its tone)
    plain_causes: tuple[str, ...] = ("busy", "no_answer")
    #: operator recordings replacing shipped prompts (``softswitch prompt install``)
    prompt_dir: str = "prompts"
    user_agent: str = "softswitch"  # no version: it only helps scanners pick exploits
    #: HTTPS for provisioning when both are set.
    tls_cert: str | None = None
    tls_key: str | None = None
    log_level: str = "INFO"

    def effective_realm(self) -> str:
        if self.realm:
            return self.realm
        if self.domains:
            return self.domains[0]
        return self.sip_listen[0][0]

    def local_domains(self) -> set[str]:
        """Names a Request-URI / To host may carry for us to treat it as ours."""
        names = {d.lower() for d in self.domains}
        for host, port in self.sip_listen:
            names.add(host.lower())
            names.add(f"{host.lower()}:{port}")
            if host in ("0.0.0.0", "::"):
                names.update({"127.0.0.1", "localhost", "::1", "[::1]"})
        if self.realm:
            names.add(self.realm.lower())
        return names

    @classmethod
    def from_env(cls) -> Settings:
        s = cls()
        url = os.environ.get("SOFTSWITCH_DATABASE_URL")
        if url:
            s.database_url = url
        return s

    def key_path(self) -> Path:
        return Path(self.key_file)
