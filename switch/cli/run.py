"""``softswitch run``: the switch itself (SIP + HTTP) until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import os

from switch.settings import Settings, parse_hostport

from .common import Subparsers, state_dir

__all__ = ["add", "configure", "handle"]


def add(sub: Subparsers, parents: list[argparse.ArgumentParser]) -> None:
    run = sub.add_parser("run", help="run the switch (SIP + HTTP)", parents=parents)
    run.add_argument("--sip", action="append", default=None, metavar="HOST:PORT",
                     help="SIP UDP+TCP listen address (repeatable); default 127.0.0.1:5060")
    run.add_argument("--http", default="127.0.0.1:8080", metavar="HOST:PORT")
    run.add_argument("--domain", action="append", default=[], help="SIP domain we serve (repeatable)")
    run.add_argument("--realm", default="", help="digest realm (default: first domain or SIP host)")
    run.add_argument("--rate-limit", type=float, default=None,
                     help="per-source SIP messages/s before dropping (0 disables; default 400)")
    run.add_argument("--qualify-interval", type=float, default=None,
                     help="seconds between OPTIONS pings to each registered contact (default 30; 0 disables)")
    run.add_argument("--qualify-timeout", type=float, default=None, metavar="S",
                     help="seconds without an answer before a ping counts as lost (default 5)")
    run.add_argument("--digest-algorithms", default="SHA-256,MD5",
                     help="digest challenges offered, strongest first (default SHA-256,MD5)")
    run.add_argument("--no-answer-timeout", type=float, default=None, metavar="S",
                     help="ring time before a call is given up as not answered (default 60)")
    run.add_argument("--max-call-duration", type=float, default=None, metavar="S",
                     help="longest a call may last before both legs get BYE (default 14400; not for 110/112/113)")
    run.add_argument("--md5-only-agents", default=None, metavar="REGEX",
                     help="User-Agents offered only the MD5 challenge (default: the provisioned ATA models, "
                     "SIPp, baresip; '' to disable)")
    run.add_argument("--udp-buffer", type=int, default=None, metavar="BYTES",
                     help="UDP socket receive/send buffer (default 524288, see switch/transport/udp.py): the longest queue, hence the longest "
                     "delay, a burst can build before the kernel drops")
    _announcement_flags(run)
    run.add_argument("--forward-hop-cap", type=int, default=None, metavar="N",
                     help="most forwards one call may take (default 5; incoming Diversion/History-Info count)")
    run.add_argument("--forward-classes", default=None, metavar="CLASSES",
                     help="number classes lines may forward to, comma-separated (default fixed,mobile; "
                     "on-net lines always; e.g. fixed,mobile,international)")
    run.add_argument("--customer-service", action="append", default=[], metavar="NUMBER",
                     help="a number soft-suspended lines may still call (repeatable): the operator's customer service")
    run.add_argument("--policy-timezone", default=None, metavar="ZONE",
                     help="the operator's time zone for the fraud guard's night hours (default Europe/Oslo)")
    run.add_argument("--sha256-first-agents", default=None, metavar="REGEX",
                     help="User-Agents offered SHA-256 before MD5 (agents known to handle several challenges); "
                     "everyone else gets MD5 first")
    run.add_argument("--overload-budget", type=float, default=None, metavar="MS",
                     help="longest wait in the UDP queue before new requests get 503 + Retry-After "
                     "(default 150; 0 = never shed)")
    run.add_argument("--overload-capacity", type=float, default=None, metavar="N",
                     help="registrations (or calls) per second this machine serves at least: refused requests are "
                     "booked their Retry-After at this rate or the busiest second of the last minute, "
                     "whichever is higher (default 1000)")
    run.add_argument("--tcp-max-per-source", type=int, default=None, metavar="N",
                     help="TCP connections one source address may hold (default 64)")
    run.add_argument("--tcp-max-connections", type=int, default=None, metavar="N",
                     help="SIP TCP connections in all (default: the descriptor limit minus HTTP's budget and a reserve)")
    run.add_argument("--http-max-connections", type=int, default=None, metavar="N",
                     help="HTTP connections in all, HTTP's own descriptor budget (default 1024)")
    run.add_argument("--http-max-per-source", type=int, default=None, metavar="N",
                     help="HTTP connections one source address may hold (default 128)")
    run.add_argument("--http-header-timeout", type=float, default=None, metavar="S",
                     help="a new HTTP connection without a complete request head by then is closed (default 10)")
    run.add_argument("--http-keepalive-timeout", type=float, default=None, metavar="S",
                     help="an idle keep-alive HTTP connection is closed after this (default 75)")
    run.add_argument("--http-body-timeout", type=float, default=None, metavar="S",
                     help="a request body not all received this long after its head gets 408 and the "
                     "connection is closed (default 30)")
    run.add_argument("--tls-cert", default=None, help="certificate for HTTPS provisioning")
    run.add_argument("--tls-key", default=None)
    _billing_flags(run)
    run.set_defaults(configure=configure, handle=handle)


def _billing_flags(run: argparse.ArgumentParser) -> None:
    """Rating, the credit limit and /metrics (docs/api.md "Billing" and "/metrics")."""
    run.add_argument("--rating", choices=["on", "off"], default="on",
                     help="off: call records are written without a price or zone and no credit limit is "
                     "checked or cut (an A/B benchmark, billing done elsewhere); default on")
    run.add_argument("--billing-timezone", default=None, metavar="ZONE",
                     help="billing periods are calendar months in this zone (default Europe/Oslo)")
    run.add_argument("--credit-cut-margin", type=int, default=None, metavar="ORE",
                     help="a call in progress is cut when it would pass the customer's credit limit by more "
                     "than this many øre (default 5000; never 110/112/113)")
    run.add_argument("--metrics-token", default=os.environ.get("SOFTSWITCH_METRICS_TOKEN"), metavar="SECRET",
                     help="/metrics takes 'Authorization: Bearer SECRET' instead of an operator API token "
                     "(env SOFTSWITCH_METRICS_TOKEN)")
    run.add_argument("--metrics-listen", default=None, metavar="HOST:PORT",
                     help="serve /metrics alone, without a token, on this address (e.g. a management network)")


def _billing_settings(s: Settings, args: argparse.Namespace) -> None:
    s.rating = args.rating == "on"
    if args.billing_timezone is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(args.billing_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SystemExit(f"--billing-timezone: unknown time zone {args.billing_timezone!r} (e.g. Europe/Oslo)")
        s.billing_timezone = args.billing_timezone
    if args.credit_cut_margin is not None:
        if args.credit_cut_margin < 0:
            raise SystemExit("--credit-cut-margin must be 0 or more øre")
        s.credit_cut_margin_ore = args.credit_cut_margin
    if args.metrics_token:
        if len(args.metrics_token) < 16:
            raise SystemExit("--metrics-token must be at least 16 characters (it guards the switch's figures)")
        s.metrics_token = args.metrics_token
    if args.metrics_listen:
        s.metrics_listen = parse_hostport(args.metrics_listen, 9464)


def configure(args: argparse.Namespace, s: Settings) -> None:
    if args.sip:
        s.sip_listen = [parse_hostport(x, 5060) for x in args.sip]
    s.http_listen = parse_hostport(args.http, 8080)
    s.domains = list(args.domain)
    s.realm = args.realm
    if args.rate_limit is not None:
        s.rate_limit = args.rate_limit
        s.rate_burst = max(args.rate_limit * 2, 1.0)
    if args.qualify_interval is not None:
        s.qualify_interval = args.qualify_interval
    if args.qualify_timeout is not None:
        if args.qualify_timeout <= 0:
            raise SystemExit("--qualify-timeout must be more than 0 seconds")
        s.qualify_timeout = args.qualify_timeout
    s.digest_algorithms = tuple(a.strip() for a in args.digest_algorithms.split(",") if a.strip())
    s.tls_cert, s.tls_key = args.tls_cert, args.tls_key
    if args.no_answer_timeout is not None:
        s.no_answer_timeout = args.no_answer_timeout
    if args.udp_buffer is not None:
        s.udp_buffer = args.udp_buffer
    if args.max_call_duration is not None:
        s.max_call_duration = args.max_call_duration
    if args.md5_only_agents is not None:
        s.md5_only_agents = args.md5_only_agents
    _announcement_settings(s, args)
    _policy_settings(s, args)
    _billing_settings(s, args)
    if args.sha256_first_agents is not None:
        s.sha256_first_agents = args.sha256_first_agents
    if args.overload_budget is not None:
        s.overload_budget_ms = args.overload_budget
    if args.overload_capacity is not None:
        if args.overload_capacity <= 0:
            raise SystemExit("--overload-capacity must be more than 0 per second")
        s.overload_capacity = args.overload_capacity
    _connection_settings(s, args)


def _connection_settings(s: Settings, args: argparse.Namespace) -> None:
    """The SIP TCP and HTTP connection caps (each must be at least 1) and the HTTP timeouts."""
    for flag in ("tcp_max_per_source", "tcp_max_connections", "http_max_connections", "http_max_per_source"):
        value = getattr(args, flag)
        if value is not None:
            if value < 1:
                raise SystemExit(f"--{flag.replace('_', '-')} must be 1 or more")
            setattr(s, flag, value)
    for flag in ("http_header_timeout", "http_keepalive_timeout", "http_body_timeout"):
        value = getattr(args, flag)
        if value is not None:
            if value <= 0:
                raise SystemExit(f"--{flag.replace('_', '-')} must be more than 0 seconds")
            setattr(s, flag, value)


def _policy_settings(s: Settings, args: argparse.Namespace) -> None:
    if args.forward_hop_cap is not None:
        if not 1 <= args.forward_hop_cap <= 20:
            raise SystemExit("--forward-hop-cap must be from 1 to 20")
        s.forward_hop_cap = args.forward_hop_cap
    if args.forward_classes is not None:
        from switch.services.policy.validate import PolicyValidationError, parse_forward_classes

        try:
            parse_forward_classes(args.forward_classes)
        except PolicyValidationError as err:
            raise SystemExit(f"--forward-classes: {err.message}") from None
        s.forward_classes = args.forward_classes
    s.customer_service_numbers = tuple(args.customer_service)
    if args.policy_timezone is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(args.policy_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SystemExit(f"--policy-timezone: unknown time zone {args.policy_timezone!r}") from None
        s.policy_timezone = args.policy_timezone


def _announcement_flags(run: argparse.ArgumentParser) -> None:
    """``softswitch run`` flags of the announcement player (docs/announcements.md)."""
    run.add_argument("--announcements", choices=["on", "off"], default="on",
                     help="off: refused calls get the bare SIP status, no spoken prompt (default on)")
    run.add_argument("--rtp-ports", default="20000-20999", metavar="LOW-HIGH",
                     help="UDP ports for announcements (even ones are used; default 20000-20999)")
    run.add_argument("--rtp-address", default="", metavar="IP",
                     help="address RTP is sent from and named in the SDP (default: the first --sip host)")
    run.add_argument("--max-announcements", type=int, default=300, metavar="N",
                     help="announcements playing at once; past it refusals are plain (default 300)")
    run.add_argument("--plain-causes", default="busy,no_answer", metavar="CAUSES",
                     help="causes answered without a prompt (default busy,no_answer: the adapter's own tone; "
                     "'' announces them too)")
    run.add_argument("--prompt-dir", default=os.environ.get("SOFTSWITCH_PROMPT_DIR"),
                     help="operator recordings that replace shipped prompts (default STATE_DIR/prompts; "
                     "env SOFTSWITCH_PROMPT_DIR)")


def _announcement_settings(s: Settings, args: argparse.Namespace) -> None:
    from switch.media.ports import parse_range
    from switch.services.b2bua.causes import Cause

    s.announcements = args.announcements == "on"
    try:
        s.rtp_ports = parse_range(args.rtp_ports)
    except ValueError as exc:
        raise SystemExit(f"--rtp-ports: {exc}") from None
    if args.max_announcements < 0:
        raise SystemExit("--max-announcements must be 0 or more")
    s.max_announcements = args.max_announcements
    s.rtp_address = args.rtp_address
    plain = tuple(c.strip() for c in args.plain_causes.split(",") if c.strip())
    known = {c.value for c in Cause}
    unknown = [c for c in plain if c not in known]
    if unknown:
        raise SystemExit(f"--plain-causes: unknown cause {', '.join(unknown)} (see switch/services/b2bua/causes.py)")
    s.plain_causes = plain
    s.prompt_dir = args.prompt_dir or str(state_dir(args.state_dir) / "prompts")


def handle(args: argparse.Namespace, settings: Settings) -> int:
    from switch import app
    from switch.operator_cli import guarded

    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]

        uvloop.install()
    except ImportError:
        pass
    return guarded(app.run(settings), settings)
