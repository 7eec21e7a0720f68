"""Composition root: database → stores → services → SIP endpoint and HTTP server.

Start order matters: the schema is migrated and every binding loaded before
the SIP sockets open, so the first request after a restart already sees the
registrations the previous process promised. Stop order is the reverse, and
queued binding writes are committed before the process exits.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import logging
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from switch import _core_loader, gcstats
from switch.sip.timers import TimerConfig
from switch.store import lamp_history, migrate, repo_bindings
from switch.store.keycheck import check_key
from switch.store.crypto import SecretBox, load_or_create_key
from switch.store.engine import SessionFactory, make_engine, make_session_factory, normalise_url
from switch.store.hot_store import HotStore, make_hot_store
from switch.store.repo_lines import lines_fingerprint as stored_lines_fingerprint
from switch.store.repo_lines import load_credentials
from switch.transport.endpoint import Endpoint

from .services.adapter_status import AdapterStatusService, lamp_rows
from .services.auth import Authenticator
from .services.lines import LineDirectory, LineInfo
from .services.location import LocationService
from .services.qualify import Qualifier
from .services.registrar import Registrar, RegistrarConfig
from .settings import Settings

log = logging.getLogger("switch")


@dataclass
class Services:
    """Everything a running switch holds; handed to the HTTP app."""

    settings: Settings
    engine: AsyncEngine
    session_factory: SessionFactory
    secret_box: SecretBox
    lines: LineDirectory
    location: LocationService
    endpoint: Endpoint
    registrar: Registrar
    status: AdapterStatusService
    qualifier: Qualifier
    started_at: float
    hot_store: HotStore
    lamp_writer: Any = None
    calls: Any = None  # switch.services.b2bua.manager.CallManager
    rating: Any = None  # switch.services.rating.service.RatingService
    metrics: Any = None  # switch.services.metrics.Metrics
    policy: Any = None  # switch.services.policy.service.PolicyService (set by install_calls)
    star_codes: Any = None  # switch.services.star_codes.StarCodes


def derive(key: bytes, purpose: str) -> bytes:
    return hmac.new(key, purpose.encode(), hashlib.sha256).digest()


async def open_database(settings: Settings) -> tuple[AsyncEngine, SessionFactory, SecretBox]:
    url = normalise_url(settings.database_url)
    await migrate.upgrade(url)
    engine = make_engine(url)
    key = settings.key or load_or_create_key(settings.key_file)
    sf, box = make_session_factory(engine), SecretBox(key)
    try:
        await check_key(sf, box)  # the wrong key file refuses the start (switch.store.keycheck)
    except BaseException:
        await engine.dispose()
        raise
    return engine, sf, box


async def start(settings: Settings) -> Services:
    log.info("SIP core: %s", _core_loader.STATE)
    engine, sf, box = await open_database(settings)
    realm = settings.effective_realm()

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

    lines = LineDirectory(load_lines, lines_fingerprint)
    await lines.reload()

    hot = make_hot_store(settings.database_url)
    await hot.open()
    location = LocationService(hot.replace_bindings, commit_window=settings.commit_window)
    location.start(await repo_bindings.load_bindings(sf))
    key = settings.key or load_or_create_key(settings.key_file)

    endpoint = Endpoint(
        timers=TimerConfig(t1=settings.t1, t2=settings.t2, t4=settings.t4),
        user_agent=settings.user_agent,
        rate=settings.rate_limit,
        burst=settings.rate_burst,
    )
    endpoint.tcp_idle_timeout = settings.tcp_idle_timeout
    endpoint.udp_buffer = settings.udp_buffer
    endpoint.tcp_max_per_source = settings.tcp_max_per_source
    endpoint.shed_budget = settings.overload_budget_ms / 1000.0
    status = AdapterStatusService(lines, location, persist=None)
    auth = Authenticator(
        realm=realm,
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
    )
    domains = settings.local_domains()
    auth.served = lambda uri: uri.host.lower() in domains or uri.hostport.lower() in domains
    auth.registered_from = location.sources_of
    registrar = Registrar(
        config=RegistrarConfig(
            domains=frozenset(domains),
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
    )
    registrar.observers.append(status.register_outcome)
    endpoint.handlers["REGISTER"] = registrar.on_register
    endpoint.seen_hooks.append(status.sip_seen)
    qualifier = Qualifier(
        endpoint,
        location,
        interval=settings.qualify_interval,
        timeout=settings.qualify_timeout,
        from_host=realm,
        on_result=status.qualify_result,
    )
    services = Services(
        settings=settings,
        engine=engine,
        session_factory=sf,
        secret_box=box,
        lines=lines,
        location=location,
        endpoint=endpoint,
        registrar=registrar,
        status=status,
        qualifier=qualifier,
        started_at=time.time(),
        hot_store=hot,
    )
    status.restore_lamps(await lamp_history.load_lamps(sf), await lamp_history.load_config_fetch_times(sf))
    status.restore_qualify(await repo_bindings.load_qualify_stats(sf))
    writer = lamp_history.LampWriter(hot)
    status.persist = lambda changes: writer.submit(lamp_rows(changes, time.time()))
    services.lamp_writer = writer
    status.start()
    await endpoint.start(settings.sip_listen)
    qualifier.start()
    from .services.b2bua.manager import install_calls
    from .services.rating.service import RatingService

    services.rating = await RatingService.open(
        sf,
        tz=settings.billing_timezone,
        margin_ore=settings.credit_cut_margin_ore,
        suspender=lambda: getattr(services, "policy", None),  # the credit limit suspends through it
    )
    services.calls = await install_calls(services)
    services.star_codes = await install_star_codes(services)
    _install_metrics(services)
    return services


def _install_metrics(services: Services) -> None:
    """``/metrics``: hooks where the events happen, the rest read at scrape time (switch.services.metrics)."""
    from .services.metrics import Metrics

    metrics = services.metrics = Metrics()
    services.registrar.observers.append(metrics.register_outcome)
    services.registrar.latency_hook = metrics.register_latency.observe
    services.qualifier.on_result = metrics.wrap_qualify(services.qualifier.on_result)
    if services.calls is not None:
        services.calls.end_hooks.append(metrics.call_ended)
    metrics.watch(services)


async def install_star_codes(services: Services) -> Any:
    """Star codes on the calls: they change forwarding through the policy service
    (``install_calls`` made it), with its validation and audit trail; their own
    per-code policy reloads when another process writes it."""
    from .services.star_codes import StarCodes

    if services.calls is None or services.policy is None:
        return None
    star_codes = StarCodes(services.session_factory, services.policy)
    await star_codes.load()
    star_codes.start()
    services.calls.star_codes = star_codes
    return star_codes


async def stop(services: Services) -> None:
    if services.star_codes is not None:
        await services.star_codes.close()  # a code being carried out: its call is ended below
    if services.calls is not None:
        await services.calls.close()  # BYE live calls and flush their CDRs while the sockets are open
    if services.rating is not None:
        await services.rating.close()  # after the CDR writer: totals of the last batches
    await services.qualifier.stop()
    await services.endpoint.stop()
    await services.location.close()
    await save_reachability(services)
    await services.lamp_writer.close()  # before the store it writes through
    await services.hot_store.close()
    await services.engine.dispose()


async def save_reachability(services: Services) -> None:
    """Write the ping histories that changed since the last call."""
    await services.hot_store.write_qualify(services.status.take_dirty_qualify_rows())


async def _housekeeping(services: Services) -> None:
    """Sweep expired bindings and pick up line changes every 5 s; save ping histories every 30 s;
    age the lamps once a minute.

    Every lamp change with a cause (REGISTER, expiry, ping, config fetch) is pushed
    as it happens; the minute tick only catches what time alone changes (PWR going
    stale). Recomputing every adapter every 5 s cost ~0.5 s of CPU per tick at
    10,000 adapters and showed up as latency spikes under load.
    """
    tick = 0
    while True:
        await asyncio.sleep(5.0)
        tick += 1
        try:
            await services.lines.reload_if_changed()
            removed = await services.location.sweep()
            if removed:
                log.info("swept %d expired binding(s)", removed)
            if tick % 6 == 0:
                await save_reachability(services)  # a crash loses at most 30 s of ping history
            if tick % 12 == 0:
                await services.status.refresh_all_async()
        except Exception:  # noqa: BLE001 - housekeeping must go on
            log.exception("housekeeping failed")


def tune_gc(
    young_every: float = 0.05,
    full_every: float = 30.0,
    *,
    quiet: Callable[[], bool] | None = None,
    full_at_most: float = 300.0,
) -> None:
    """Keep the cyclic garbage collector from stalling SIP: young collections on a clock, full ones when quiet.

    Calls leave no reference cycles (tests/services/test_b2bua_no_cycles.py),
    nor do registrations, CDR writes or housekeeping (0 unreachable objects
    with ``bench/bench_calls_inproc.py --find-cycles``), so under load the
    collector frees nothing: it walks the objects of finished calls still in
    their RFC 3261 linger timers (~120 per call for 32 s: ~1.5 million at 400
    calls/s). Measured with ``bench/bench_calls_inproc.py --rate 400``:

    * Freezing what exists after start-up (modules, SQLAlchemy and aiohttp
      machinery, the line directory) takes it out of every scan.
    * Python starts a young collection when allocations minus deallocations
      pass threshold 0. At a steady call rate the calls leaving their linger
      timers die as fast as new ones are made, the count hardly moves, and the
      "young" collection then walks everything made since the previous one:
      with the old thresholds (10000, 50, 1000) up to ~500,000 objects,
      200-400 ms, several times a minute (the PDD p99). No threshold bounds
      that; a clock does. ``gc.collect(1)`` every ``young_every`` s walks
      ~2,500 objects at 400 calls/s (under 1 ms) and moves the linger
      objects on to generation 2. The thresholds stay as a backstop for
      bursts inside one callback (threshold 1 = 0: no growing generation 1).
    * A full collection walks every live object (~1 s at 400 calls/s) and only
      cycles need it; the one source found is asyncio's socket transport,
      ~7 objects per closed HTTP connection. So there is no automatic one
      (threshold 2 out of reach), just one every ``full_every`` s -- and,
      when ``quiet`` is given, only once it says traffic is light (few
      transactions in flight: the walk is short and few requests wait), but
      at the latest after ``full_at_most`` s. Once an hour was too rare: after
      a flood or a load run the garbage of that hour stayed (RSS 152 -> 373 MiB
      over the call ladder); every 30 s while quiet, at the latest every 5
      minutes, memory is back near its baseline within a minute of the load
      ending. After each full collection the C heap's free pages go back to the
      system (glibc ``malloc_trim``): datagrams and SIP texts live there, not in
      Python's arenas, and would otherwise keep the RSS of the peak.
    """
    gcstats.install()
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 0, 1_000_000_000)
    loop = asyncio.get_running_loop()
    full_at = loop.time() + full_every

    def collect() -> None:
        nonlocal full_at
        now = loop.time()
        if now >= full_at and (quiet is None or quiet() or now >= full_at + full_at_most - full_every):
            gc.collect()
            _trim_heap()
            full_at = loop.time() + full_every
        else:
            gc.collect(1)
        loop.call_later(young_every, collect)

    loop.call_later(young_every, collect)


def _trim_heap() -> None:
    """Return the C heap's free pages to the system (glibc only; elsewhere nothing)."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Any = None


async def run(settings: Settings) -> int:
    # The SQLite driver runs in a thread: with the default 5 ms GIL switch interval a
    # busy event loop starves it (a convoy). 0.5 ms keeps commits short under load.
    sys.setswitchinterval(0.0005)
    services = await start(settings)
    from provisioning.app import start_http

    http_runner = await start_http(services)
    tune_gc(quiet=lambda: services.endpoint.layer.live_transactions < 1000)
    house = asyncio.get_running_loop().create_task(_housekeeping(services))
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_event.set)
    services.endpoint.shed_from = time.time()  # overload shedding from now on, not for start-up's queue
    log.info("softswitch ready")
    print("softswitch ready", flush=True)
    await stop_event.wait()
    log.info("stopping")
    house.cancel()
    await http_runner.cleanup()
    await stop(services)
    return 0


async def import_file(settings: Settings, path: Path) -> int:
    from switch.store import importer

    engine, sf, box = await open_database(settings)
    try:
        try:
            from .services.policy.importing import ForwardTargetCheck
            from .services.policy.validate import parse_forward_classes

            checks = (ForwardTargetCheck(parse_forward_classes(settings.forward_classes)),)
            doc = importer.load_import_file(path, checks=checks)
            report = await importer.import_document(sf, doc, box, settings.effective_realm())
        except importer.ImportValidationError as err:
            print(err.summary(), file=sys.stderr)
            return 1
        print(f"imported {path}: {report.summary()}")
        return 0
    finally:
        await engine.dispose()


async def create_token(settings: Settings, role: str, customer: str | None, name: str) -> int:
    from switch.store import repo_tokens
    from switch.store.models import TokenRole

    engine, sf, _ = await open_database(settings)
    try:
        try:
            secret, _info = await repo_tokens.create_token(sf, TokenRole(role), customer_ref=customer, label=name)
        except ValueError as err:
            print(f"error: {err}")
            return 1
        print(f"Created {role} token. Keep it secret; it is shown only once:")
        print(secret)
        return 0
    finally:
        await engine.dispose()


async def migrate_only(settings: Settings) -> int:
    engine, _, _ = await open_database(settings)
    await engine.dispose()
    print("schema is at head")
    return 0
