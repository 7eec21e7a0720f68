"""The composition root: the one place that builds the switch and hands each part what it uses.

database → line directory → location (bindings) → SIP endpoint → lamps →
registrar → qualifier → calls (trunks, policy, star codes, rating, CDR writer,
call manager) → resync →
what the HTTP side gets (``provisioning.deps.HttpDeps``).

Nothing below this module builds another part or reaches into one: every
dependency is a constructor argument, typed (the services see the endpoint
only as ``switch.services.sip_port.SipPort``/``CallPort``). Only this module,
``switch.cli`` and the process helpers next to it (``gc_policy``,
``housekeeping``, ``database``) may import ``provisioning`` and
``switch.transport`` together (tests/test_architecture.py).

Start order matters: the schema is migrated and every binding loaded before
the SIP sockets open, so the first request after a restart already sees the
registrations the previous process promised. Stop order is the reverse, and
queued binding writes are committed before the process exits
(docs/architecture.md has both orders).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from provisioning.app import start_http
from provisioning.connections import HttpLimits
from provisioning.deps import HttpDeps, ProvisioningConfig
from provisioning.ui.deps import BindingView, UiDeps
from switch import _core_loader, gcstats, memstats
from switch.sip.timers import TimerConfig
from switch.store import lamp_history, repo_adapters, repo_bindings
from switch.store.crypto import SecretBox
from switch.store.engine import SessionFactory
from switch.store.hot_store import HotStore, make_hot_store
from switch.store.repo_lines import lines_fingerprint as stored_lines_fingerprint
from switch.store.repo_lines import load_credentials
from switch.store.repo_trunks import RouteRecord, TrunkRecord, load_routing
from switch.transport.endpoint import Dispatch, Endpoint
from switch.transport.tcp import descriptor_limit, split_descriptors

from .database import derive, open_database
from .gc_policy import tune_gc
from .housekeeping import housekeeping
from .services.adapter_status import AdapterStatusService, lamp_rows
from .services.auth import Authenticator
from .services.b2bua.announce import build_announcer
from .services.b2bua.manager import CallManager, CallSettings
from .services.cdr import CdrWriter
from .services.lines import LineDirectory, LineInfo
from .services.location import LocationService
from .services.metrics import LiveSources, Metrics
from .services.numbering import NumberClass, normalise
from .services.policy.model import PolicyConfig
from .services.policy.reach import LineReach
from .services.policy.service import PolicyService
from .services.policy.validate import parse_forward_classes
from .services.qualify import Qualifier
from .services.rating.service import RatingService
from .services.star_codes import StarCodes
from .services.registrar import Registrar, RegistrarConfig
from .services.resync import ResyncService
from .services.trunks import TrunkService
from .settings import Settings

__all__ = ["Switch", "line_directory", "run", "save_reachability", "start", "stop"]

log = logging.getLogger("switch")


@dataclass(slots=True)
class Switch:
    """Everything a running switch holds. Only the root (and tests of the whole) hold this."""

    settings: Settings
    engine: AsyncEngine
    session_factory: SessionFactory
    secret_box: SecretBox
    hot_store: HotStore
    lines: LineDirectory
    location: LocationService
    endpoint: Endpoint
    auth: Authenticator
    registrar: Registrar
    status: AdapterStatusService
    lamp_writer: lamp_history.LampWriter
    qualifier: Qualifier
    trunks: TrunkService
    policy: PolicyService
    star_codes: StarCodes
    rating: RatingService
    metrics: Metrics
    calls: CallManager
    resync: ResyncService
    #: what the HTTP side is given (``provisioning.app.create_app(switch.http)``)
    http: HttpDeps
    #: HTTP's connection caps and timeouts: its own share of the descriptor limit
    http_limits: HttpLimits
    started_at: float


def line_directory(sf: SessionFactory, box: SecretBox, realm: str) -> LineDirectory:
    async def load_lines() -> list[LineInfo]:
        creds = await load_credentials(sf, realm, secret_box=box)
        return [
            LineInfo(
                line_id=c.line_id,
                auth_user=c.auth_user,
                number=c.number,
                ha1_md5=c.ha1_md5,
                ha1_sha256=c.ha1_sha256,
                adapter_id=c.adapter_id,
                port=c.port,
                language=str(getattr(c.language, "value", c.language)),
                enabled=c.enabled,
                alarm=c.alarm,
            )
            for c in creds.values()
        ]

    async def lines_fingerprint() -> object:
        return await stored_lines_fingerprint(sf)

    return LineDirectory(load_lines, lines_fingerprint)


def _authenticator(settings: Settings, key: bytes, lines: LineDirectory, location: LocationService) -> Authenticator:
    domains = settings.local_domains()
    return Authenticator(
        realm=settings.effective_realm(),
        secret=derive(key, "sip-nonce"),
        lookup=lines.credential,
        algorithms=settings.digest_algorithms,
        nonce_lifetime=settings.nonce_lifetime,
        fail_threshold=settings.auth_fail_threshold,
        fail_window=settings.auth_fail_window,
        block_seconds=settings.auth_block_seconds,
        source_fail_threshold=settings.source_fail_threshold,
        md5_only_agents=settings.md5_only_agents,
        sha256_first_agents=settings.sha256_first_agents,
        served=lambda uri: uri.host.lower() in domains or uri.hostport.lower() in domains,
        registered_from=location.sources_of,
    )


async def _trunks(sf: SessionFactory, box: SecretBox) -> TrunkService:
    async def load() -> tuple[list[TrunkRecord], list[RouteRecord]]:
        return await load_routing(sf, box)

    trunks = TrunkService(load)
    await trunks.reload()
    return trunks


def _health(location: LocationService, endpoint: Endpoint, calls: CallManager) -> dict[str, object]:
    """The running switch's figures for ``/health``."""
    ep = endpoint
    announcer = calls.env.announcer
    return {
        "sip_core": _core_loader.STATE,
        "gc": gcstats.STATS.snapshot(),
        # RSS, C heap and SQLite (switch/memstats.py), and what the finished transactions keep
        "memory": {**memstats.snapshot(), "lingering_mib": round(ep.layer.lingering_bytes / 2**20, 1)},
        "bindings": location.count(),
        "binding_commits": location.commit_stats(),
        # the announcement player's counters (docs/announcements.md)
        "announcements": None if announcer is None else announcer.snapshot(),
        "sip": {
            "received": ep.stats.received,
            "sent": ep.stats.sent,
            "rate_limited": ep.stats.rate_limited,
            "transactions": ep.live_transactions,
        },
    }


def _customer_service(numbers: tuple[str, ...]) -> frozenset[str]:
    """Configured customer-service numbers as the policy engine compares them (E.164, or the short code)."""
    out: set[str] = set()
    for raw in numbers:
        n = normalise(str(raw).strip())
        if n.number_class is not NumberClass.INVALID:
            out.add(n.e164 or n.national or "")
    return frozenset(out)


def _policy_config(settings: Settings) -> PolicyConfig:
    return PolicyConfig(
        hop_cap=settings.forward_hop_cap,
        customer_service=_customer_service(settings.customer_service_numbers),
        forward_classes=parse_forward_classes(settings.forward_classes),
    )


def _ui_deps(settings: Settings, sf: SessionFactory, box: SecretBox, lines: LineDirectory,
             status: AdapterStatusService, location: LocationService, calls: CallManager,
             resync: ResyncService, trunks: TrunkService, rating: RatingService) -> UiDeps:
    """What the web pages use of the running switch (provisioning/ui/deps.py)."""

    async def after_change() -> None:
        """After a UI import: the new lines can register, their policy and any trunks and routes apply, at once."""
        await lines.reload()
        await trunks.reload()
        if calls.policy_service is not None:
            await calls.policy_service.reload_if_changed()

    async def resync_adapter(mac: str, actor: str) -> str:
        """The operator UI's resync button: ResyncService.resync_adapter, as the API does, in words."""
        adapter = await repo_adapters.get_adapter_by_mac(sf, mac)
        if adapter is None:
            raise LookupError(f"no adapter {mac}")
        _event, outcomes = await resync.resync_adapter(adapter, actor, 2.0)
        if not outcomes:
            return "no line of this adapter is registered: nothing to send a NOTIFY to"
        return "; ".join(f"port {o.port}: {o.result}" + (f" ({o.status})" if o.status else "") for o in outcomes)

    def bindings(line_id: int) -> list[BindingView]:
        now = time.time()
        return [
            BindingView(b.contact, f"{b.received_host}:{b.received_port}", b.transport, b.remaining(now), b.user_agent)
            for b in location.bindings(line_id)
        ]

    return UiDeps(
        session_factory=sf,
        lamps=status.status,
        bindings=bindings,
        calls_in_progress=lambda: len(calls.calls),
        registered_lines=lambda: len(location.all_lines()),
        policy=calls.policy_service,
        rating=rating,
        secret_box=box,
        realm=settings.effective_realm(),
        after_change=after_change,
        resync=resync_adapter,
        routing_reload=trunks.reload,
        secure_cookies=bool(settings.tls_cert and settings.tls_key),
    )


def _provisioning_config(settings: Settings, key: bytes) -> ProvisioningConfig:
    return ProvisioningConfig(
        nonce_secret=derive(key, "http-provisioning-nonce"),
        realm=settings.effective_realm(),
        digest_algorithms=settings.digest_algorithms,
        nonce_lifetime=settings.nonce_lifetime,
        sip_listen=settings.sip_listen[0],
        sip_domain=settings.domains[0] if settings.domains else None,
        min_expires=settings.min_expires,
        max_expires=settings.max_expires,
        billing_timezone=settings.billing_timezone,
        credit_cut_margin_ore=settings.credit_cut_margin_ore,
        metrics_token=settings.metrics_token,
        metrics_listen=settings.metrics_listen,
    )


def _cdr_writer(settings: Settings, hot: HotStore, rating: RatingService) -> CdrWriter:
    """The CDR writer, pricing each batch unless ``--rating off`` (then rows are written without a price).

    A 100 ms window: at 400 calls/s that is ten commits a second instead of one per call.
    The raw-driver store: an ORM insert per batch cost ~3 ms a call (see hot_store).
    Each batch is priced in the writer's task (never in the call path), then written.
    """
    if not settings.rating:
        return CdrWriter(hot.insert_call_records, window=float(settings.cdr_commit_window),
                         spill_path=settings.cdr_spill_file)
    return CdrWriter(rating.wrap_write(hot.insert_call_records), window=float(settings.cdr_commit_window),
                     spill_path=settings.cdr_spill_file, rate=rating.rate_rows)


def _descriptor_budgets(settings: Settings) -> tuple[HttpLimits, int]:
    """Split the descriptor limit (raised to the hard limit) into HTTP's and SIP TCP's budgets.

    Separate budgets: 20,000 idle TCP connections once took every descriptor, and with
    them HTTP; now a flood of either side leaves the other (and the database, UDP and RTP
    sockets: ``OTHER_RESERVE``) working.
    """
    limit = descriptor_limit()
    http_cap, sip_cap = split_descriptors(limit, settings.http_max_connections, settings.tcp_max_connections)
    if http_cap < settings.http_max_connections:
        log.warning("descriptor limit %d cannot hold %d HTTP connections and SIP over TCP: HTTP gets %d "
                    "(raise the limit: ulimit -n / LimitNOFILE)", limit, settings.http_max_connections, http_cap)
    log.info("descriptors: limit %d, SIP TCP at most %d connections, HTTP at most %d", limit, sip_cap, http_cap)
    limits = HttpLimits(max_connections=http_cap, max_per_source=min(settings.http_max_per_source, http_cap),
                        header_timeout=settings.http_header_timeout, keepalive_timeout=settings.http_keepalive_timeout,
                        body_timeout=settings.http_body_timeout)
    return limits, sip_cap


async def start(settings: Settings) -> Switch:
    """Build and start the SIP side (sockets open at the end); the HTTP side is ``run``'s."""
    log.info("SIP core: %s", _core_loader.STATE)
    db = await open_database(settings)
    sf, box = db.session_factory, db.secret_box
    realm = settings.effective_realm()

    lines = line_directory(sf, box, realm)
    await lines.reload()
    hot = make_hot_store(settings.database_url)
    await hot.open()
    location = LocationService(hot.replace_bindings, commit_window=settings.commit_window)
    lamp_writer = lamp_history.LampWriter(hot)
    status = AdapterStatusService(lines, location, persist=lambda changes: lamp_writer.submit(lamp_rows(changes, time.time())))
    # the lamps hear of every committed binding change (they read the bindings through the location)
    location.start(await repo_bindings.load_bindings(sf), listeners=(status.bindings_changed,))

    http_limits, sip_tcp_cap = _descriptor_budgets(settings)
    endpoint = Endpoint(
        timers=TimerConfig(t1=settings.t1, t2=settings.t2, t4=settings.t4),
        user_agent=settings.user_agent,
        rate=settings.rate_limit,
        burst=settings.rate_burst,
        tcp_idle_timeout=settings.tcp_idle_timeout,
        udp_buffer=settings.udp_buffer,
        tcp_max_per_source=settings.tcp_max_per_source,
        tcp_max_connections=sip_tcp_cap,
        shed_budget=settings.overload_budget_ms / 1000.0,
        shed_capacity=settings.overload_capacity,
    )
    metrics = Metrics()  # /metrics: counted where the events happen, the rest read at scrape time
    auth = _authenticator(settings, db.key, lines, location)
    registrar = Registrar(
        config=RegistrarConfig(
            domains=frozenset(settings.local_domains()),
            min_expires=settings.min_expires,
            max_expires=settings.max_expires,
            default_expires=settings.default_expires,
            max_contacts=settings.max_contacts_per_line,
        ),
        auth=auth,
        lines=lines,
        location=location,
        reply=endpoint.reply,
        challenge_reply=endpoint.reply_and_forget,
        observers=(status.register_outcome, metrics.register_outcome),
        latency_hook=metrics.register_latency.observe,
    )
    qualifier = Qualifier(
        endpoint,
        location,
        interval=settings.qualify_interval,
        timeout=settings.qualify_timeout,
        from_host=realm,
        on_result=metrics.wrap_qualify(status.qualify_result),
    )
    status.restore_lamps(await lamp_history.load_lamps(sf), await lamp_history.load_config_fetch_times(sf))
    status.restore_qualify(await repo_bindings.load_qualify_stats(sf))
    status.start()

    trunks = await _trunks(sf, box)
    # the API, star codes and the credit limit change policy through it; the calls read it
    policy = PolicyService(sf, lines, _policy_config(settings), timezone=settings.policy_timezone,
                           reach=LineReach(location, status))
    await policy.load()
    policy.start()
    rating = await RatingService.open(
        sf,
        tz=settings.billing_timezone,
        margin_ore=settings.credit_cut_margin_ore,
        suspender=lambda: policy,  # the credit limit suspends through it
        credit=settings.rating,  # --rating off: no credit limit (the tariffs still answer price look-ups)
    )
    cdr = _cdr_writer(settings, hot, rating)
    cdr.start()
    star_codes = StarCodes(sf, policy)  # they change forwarding through the policy service
    await star_codes.load()
    star_codes.start()
    calls = CallManager(
        endpoint=endpoint,
        auth=auth,
        lines=lines,
        location=location,
        trunks=trunks,
        cdr=cdr,
        settings=CallSettings.from_settings(settings),
        announcer=build_announcer(settings, endpoint.via_addresses),
        call_budget=None if rating.credit is None else rating.credit.on_answer,
        end_hooks=(metrics.call_ended,),
        policy_service=policy,
        star_codes=star_codes,
    )

    # The sockets open once every receiver exists: REGISTER to the registrar, INVITE, CANCEL
    # and the in-dialog methods to the calls, every message's source to the lamps.
    await endpoint.start(settings.sip_listen, Dispatch(
        handlers={"REGISTER": registrar.on_register, **calls.handlers},
        on_cancel=calls.on_cancel,
        on_late_answer=calls.on_late_answer,
        seen=(status.sip_seen,),
    ))
    qualifier.start()
    calls.start_background()

    resync = ResyncService(endpoint, session_factory=sf, secret_box=box, location=location, from_host=realm)
    http = HttpDeps(
        session_factory=sf,
        secret_box=box,
        config=_provisioning_config(settings, db.key),
        status=status,
        location=location,
        lines=lines,
        resync=resync,
        health=lambda: _health(location, endpoint, calls),
        metrics=metrics,
        policy=policy,
        rating=rating,
        star_codes=star_codes,
        ui=_ui_deps(settings, sf, box, lines, status, location, calls, resync, trunks, rating),
        routing_reload=trunks.reload,
    )
    sw = Switch(
        settings=settings, engine=db.engine, session_factory=sf, secret_box=box, hot_store=hot, lines=lines,
        location=location, endpoint=endpoint, auth=auth, registrar=registrar, status=status,
        lamp_writer=lamp_writer, qualifier=qualifier, trunks=trunks, policy=policy, star_codes=star_codes, rating=rating, metrics=metrics, calls=calls, resync=resync, http=http,
        http_limits=http_limits, started_at=time.time(),
    )
    metrics.watch(LiveSources(bindings=location, lamps=status, sip=endpoint, calls=calls, rating=rating))
    return sw


async def stop(sw: Switch) -> None:
    """The reverse of ``start``; every queued binding, CDR, ping history and lamp change is written."""
    await sw.star_codes.close()  # a code being carried out: its call is ended below
    await sw.calls.close()  # BYE live calls and flush their CDRs while the sockets are open
    await sw.policy.close()
    await sw.rating.close()  # after the CDR writer: totals of the last batches
    await sw.qualifier.stop()
    await sw.endpoint.stop()
    await sw.location.close()
    await save_reachability(sw)
    await sw.lamp_writer.close()  # before the store it writes through
    await sw.hot_store.close()
    await sw.engine.dispose()


async def save_reachability(sw: Switch) -> None:
    """Write the ping histories that changed since the last call."""
    await sw.hot_store.write_qualify(sw.status.take_dirty_qualify_rows())


def tune_switch_gc(sw: Switch) -> None:
    """The collector policy of a running switch (``softswitch run`` and the in-process benchmarks).

    Full collections wait for light traffic (few transactions in flight), and
    release the SQLite writer's caches first (see ``switch.gc_policy.tune_gc``).
    """
    tune_gc(quiet=lambda: sw.endpoint.live_transactions < 1000, release=[sw.hot_store.release_memory])


async def run(settings: Settings) -> int:
    """``softswitch run``: start everything, serve until SIGINT/SIGTERM, stop in order."""
    # The SQLite driver runs in a thread: with the default 5 ms GIL switch interval a
    # busy event loop starves it (a convoy). 0.5 ms keeps commits short under load.
    sys.setswitchinterval(0.0005)
    sw = await start(settings)
    http_runner = await start_http(sw.http, settings.http_listen, tls_cert=settings.tls_cert,
                                   tls_key=settings.tls_key, limits=sw.http_limits)
    tune_switch_gc(sw)
    house = housekeeping(lines=sw.lines, location=sw.location, status=sw.status,
                         save_reachability=lambda: save_reachability(sw))
    house.start()
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_event.set)
    sw.endpoint.shed_from(time.time())  # overload shedding from now on, not for start-up's queue
    log.info("softswitch ready")
    print("softswitch ready", flush=True)
    await stop_event.wait()
    log.info("stopping")
    await house.stop()
    await http_runner.cleanup()
    await stop(sw)
    return 0

