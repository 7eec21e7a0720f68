"""The adapter-facing side of provisioning: first-contact files and per-adapter configs.

Every URL here is fetched by a telephone adapter, not by a person (all GET):

* **Bootstrap** -- ``/spa112.cfg``, ``/spa122.cfg``, ``/spa2102.cfg``, ``/init.cfg`` (Cisco/
  Linksys factory ``Profile_Rule`` targets), ``/cfg.xml``, ``/cfght802.xml``, ``/cfght812.xml``
  and ``/cfg<mac>.xml`` (Grandstream's first requests). These are the only unauthenticated
  URLs. They carry no secret: they only point the adapter at ``/cfg/...``.
* **Profile URL** -- ``/cfg/<token>/<file>``: the adapter's own URL. ``token`` is 192 bits
  derived from the adapter's provisioning secret and its MAC, so it opens that one MAC's file
  and nothing else. This is the URL written into every config we serve (``Profile_Rule``,
  Grandstream ``P237``, OBi ``ConfigURL``), so after its first fetch an adapter keeps using it.
* **Digest URL** -- ``/cfg/<file>``: the same file behind HTTP Digest (RFC 7616), username =
  the MAC (12 lower-case hex digits), password derived from the same secret. The bootstrap
  files point here, because a factory-fresh adapter cannot know its token; for its first
  fetch to succeed the adapter must hold its digest credentials already (Grandstream P1360/
  P1361, staged by hand or by the reseller: ``GET /api/v1/adapters/{mac}/profile-url``).

Why the split: a bootstrap must never hand out anything that opens a config, because all it
knows about the caller is a MAC, and MACs are printed on the box. An adapter proves who it is
with a secret only it and the switch know.

Refusals and guessing:

* An unknown MAC gets 404 and is written to the unclaimed-adapters list (with source address
  and User-Agent) for an operator to assign. That 404 tells a caller whether a MAC exists --
  the issue asks for it -- so guessing is throttled instead: every unknown MAC, bad token and
  bad digest response counts against the source address (IPv6: its /64) and the
  (source, MAC) pair (``AuthThrottle``); a blocked caller gets 429 for every MAC, so further
  guesses learn nothing. Each failure and each block is logged with the source address. A
  (source, MAC) pair that authenticated recently stays allowed, so an attacker behind the
  same NAT as an adapter cannot lock it out.
* A wrong token is 403, a wrong digest answer a fresh 401: both only happen for a MAC the 404
  already revealed, so they reveal nothing more.
* If the User-Agent names a MAC (Grandstream ``DevId``, Cisco ``(MAC)``), it must be the MAC
  in the URL.

Every successful fetch records time, source address, User-Agent and the SHA-256 of the bytes
served (``repo_adapters.record_config_fetch``), stores the firmware from the User-Agent and
turns the PWR lamp on (``AdapterStatusService.config_fetched``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from switch.sip import digest
from switch.services.digest_verify import DigestVerifier, Verdict
from switch.sip.nonces import NonceCounter, NonceManager
from switch.store import adapter_models, repo_adapters, repo_lines
from switch.store.repo_adapters import AdapterInfo
from switch.transport.ratelimit import AuthThrottle, AuthThrottlePolicy

from . import render
from .errors import problem_details
from .deps import HttpDeps, ProvisioningConfig
from .keys import DEPS

__all__ = [
    "ATA_STATE",
    "AdapterCredentials",
    "AtaState",
    "DIGEST_REALM",
    "adapter_credentials",
    "bootstrap_routes",
    "config_status",
    "origin_of",
    "parse_config_filename",
    "render_for",
    "setup",
    "source_key",
]

log = logging.getLogger(__name__)

#: Realm of the provisioning digest (RFC 7616 §3.3); adapters never need to be told it.
DIGEST_REALM = "softswitch-provisioning"
#: Prefix of every per-adapter URL.
CFG_PREFIX = "/cfg"
# Throttle policy: an adapter never fails in normal operation, and an unassigned one costs
# 2-3 failures per boot, so 20 per 5 minutes per address leaves room for a few unassigned
# adapters behind one NAT while making MAC enumeration hopeless (blocks double up to 1 h).
THROTTLE_POLICY = AuthThrottlePolicy(
    pair_threshold=5.0,
    user_threshold=20.0,
    source_threshold=20.0,
    window=300.0,
    block=60.0,
    max_block=3600.0,
)

# spa<mac>.xml (Cisco/Linksys), cfg<mac>.xml (Grandstream), obi<mac>.xml (OBi), <mac>.xml (Cisco
# "$MA.xml" rules); cfg<mac> and cfg<mac>.bin are Grandstream's binary config, never served.
_FILE_RE = re.compile(r"^(?P<prefix>spa|cfg|obi)?(?P<mac>[0-9A-Fa-f]{12})(?P<ext>\.xml|\.bin)?$")
_HOST_RE = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?$")


# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True, slots=True)
class AdapterCredentials:
    """What an adapter proves itself with, all derived from its stored secret."""

    url_token: str  # 32 base64url characters = 192 bits
    digest_user: str  # the MAC, 12 lower-case hex digits
    digest_password: str  # 24 base64url characters = 144 bits


def _derive(secret: str, purpose: str, mac: str, chars: int) -> str:
    raw = hmac.new(secret.encode("utf-8"), f"{purpose}\0{mac}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")[:chars]


def adapter_credentials(secret: str, mac: str) -> AdapterCredentials:
    """Derive the URL token and digest password from the adapter's provisioning secret.

    Derived rather than stored: nothing new in the database, and rotating the secret
    revokes both at once. Two purposes, two values: a URL that leaks through a proxy log
    does not give away the digest password, and the other way round. The MAC is mixed in
    so a value can only ever be checked against the adapter it was made for.
    """
    return AdapterCredentials(
        url_token=_derive(secret, "softswitch/profile-url", mac, 32),
        digest_user=mac,
        digest_password=_derive(secret, "softswitch/http-digest", mac, 24),
    )


# --------------------------------------------------------------------------- app state


@dataclass(slots=True)
class AtaState:
    """Per-application state of the adapter endpoints (no globals)."""

    nonces: NonceManager
    counter: NonceCounter
    throttle: AuthThrottle
    algorithms: tuple[str, ...]
    #: the server-side digest check the SIP registrar uses too (switch/services/digest_verify.py)
    verifier: DigestVerifier
    #: adapter id -> origin ("http://host:port") its last config was rendered for
    last_origin: dict[int, str] = field(default_factory=dict)
    clock: Callable[[], float] = time.time


ATA_STATE: web.AppKey[AtaState] = web.AppKey("ata_state", AtaState)


def setup(app: web.Application) -> None:
    """Create the state the adapter endpoints need and add their routes."""
    config = app[DEPS].config
    algorithms = tuple(a for a in config.digest_algorithms if digest.canonical_algorithm(a)) or ("MD5",)
    nonces = NonceManager(config.nonce_secret, config.nonce_lifetime)
    counter = NonceCounter(ttl=config.nonce_lifetime * 2)
    app[ATA_STATE] = AtaState(
        nonces=nonces,
        counter=counter,
        throttle=AuthThrottle(THROTTLE_POLICY),
        algorithms=algorithms,
        # without qop a nonce stays good until it expires (adapters re-fetch with the same one)
        verifier=DigestVerifier(nonces, counter, algorithms, single_use_without_qop=False),
    )
    app.router.add_routes(bootstrap_routes())
    app.router.add_get(CFG_PREFIX + "/{token:[A-Za-z0-9_-]{1,128}}/{filename}", token_config)
    app.router.add_get(CFG_PREFIX + "/{filename}", digest_config)


# --------------------------------------------------------------------------- helpers


def source_key(remote: str | None) -> str:
    """The throttling key of a caller: its IP, or its /64 for IPv6 (one host owns a /64)."""
    if not remote:
        return "?"
    try:
        ip = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


def parse_config_filename(name: str) -> tuple[str, bool] | None:
    """``spa000e08aabbcc.xml`` -> ("000e08aabbcc", False); ``cfg<mac>`` -> (mac, True) (binary)."""
    m = _FILE_RE.match(name)
    if m is None:
        return None
    mac = m["mac"].lower()
    if m["ext"] == ".xml":
        return mac, False
    if m["prefix"] == "cfg":
        return mac, True
    return None


def origin_of(request: web.Request) -> str:
    """``scheme://host[:port]`` the caller used to reach us: what its URLs must point at.

    The Host header is the caller's word; a malformed one falls back to our own socket
    address, so nothing odd ends up in a config.
    """
    host = request.host
    if not _HOST_RE.match(host):
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        if sockname:
            h, p = sockname[0], sockname[1]
            host = f"[{h}]:{p}" if ":" in h else f"{h}:{p}"
        else:
            host = "localhost"
    return f"{request.scheme}://{host}"


def _ua(request: web.Request) -> str:
    return request.headers.get("User-Agent", "")[:255]


def _hostname(origin: str) -> str:
    netloc = origin.split("://", 1)[1]
    if netloc.startswith("["):
        return netloc[1 : netloc.index("]")]
    return netloc.rsplit(":", 1)[0] if ":" in netloc else netloc


def _sip_target(config: ProvisioningConfig, origin: str) -> tuple[str, str, int]:
    """(SIP domain, proxy host, proxy port) to write into a config."""
    host, port = config.sip_listen
    if host in ("0.0.0.0", "::", ""):
        # Listening everywhere: the address the adapter reached HTTP on is our best guess.
        host = _hostname(origin)
    domain = config.sip_domain or host
    return domain, host, port


async def render_for(deps: HttpDeps, adapter: AdapterInfo, origin: str, secret: str | None = None
                     ) -> tuple[bytes, str]:
    """The adapter's complete config as served from ``origin``, and its content type.

    ``secret`` is the adapter's provisioning secret when the caller already has it.
    Raises ``render.ProfileError`` when the stored data cannot make a valid config and
    LookupError when the adapter has no provisioning secret.
    """
    sf, box = deps.session_factory, deps.secret_box
    if secret is None:
        secret = await repo_adapters.get_provisioning_secret(sf, adapter.adapter_id, box)
    if secret is None:
        raise LookupError(f"adapter {adapter.mac} has no provisioning secret")
    info = adapter_models.MODELS.get(adapter.model)
    if info is None:
        raise render.ProfileError(f"model {adapter.model!r} has no template")
    creds = adapter_credentials(secret, adapter.mac)
    filename = info.config_filename_pattern.format(mac=adapter.mac)
    lines = []
    for line in await repo_lines.load_adapter_lines(sf, adapter.adapter_id, box):
        lines.append(
            render.LineProfile(
                port=line.port,
                enabled=line.enabled and line.number is not None,
                number=(line.number or "").lstrip("+"),
                auth_user=line.auth_user,
                password=line.secret,
                display_name=line.display_name or "",
                alarm=line.alarm,
                language=str(getattr(line.language, "value", line.language)),
            )
        )
    config = deps.config
    domain, proxy_host, proxy_port = _sip_target(config, origin)
    expires = max(config.min_expires, min(3600, config.max_expires))
    profile = render.AdapterProfile(
        mac=adapter.mac,
        model=adapter.model,
        lines=tuple(lines),
        sip_domain=domain,
        sip_proxy_host=proxy_host,
        sip_proxy_port=proxy_port,
        profile_url=f"{origin}{CFG_PREFIX}/{creds.url_token}/{filename}",
        register_expires=expires,
        alarm_register_expires=max(config.min_expires, min(300, expires)),
    )
    return render.render_config(profile), info.content_type


def config_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


async def config_status(
    app: web.Application, adapter: AdapterInfo, fallback_origin: str
) -> dict[str, Any]:
    """Whether the config the adapter would get now differs from the one it fetched last.

    The served bytes contain our own address, so the current config is rendered for the
    origin the adapter last used (remembered in memory), and after a restart also for
    ``fallback_origin``: if any rendering hashes to the recorded value, nothing changed.
    ``changed_since_last_fetch`` is None when the adapter never fetched.
    """
    deps = app[DEPS]
    state = app[ATA_STATE]
    fetches = await repo_adapters.list_config_fetches(deps.session_factory, adapter.adapter_id, limit=1)
    candidates = [o for o in (state.last_origin.get(adapter.adapter_id), fallback_origin) if o]
    hashes: list[str] = []
    try:
        for origin in dict.fromkeys(candidates):
            body, _ = await render_for(deps, adapter, origin)
            hashes.append(config_hash(body))
    except (render.ProfileError, LookupError) as exc:
        return {"error": f"config cannot be rendered: {exc}", "last_fetch": _fetch_json(fetches[0]) if fetches else None}
    if not fetches:
        return {"changed_since_last_fetch": None, "last_fetch": None, "current_hash": hashes[0]}
    last = fetches[0]
    return {
        "changed_since_last_fetch": last.config_hash not in hashes,
        "last_fetch": _fetch_json(last),
        "current_hash": hashes[0],
    }


def _fetch_json(f: repo_adapters.ConfigFetchInfo) -> dict[str, Any]:
    return {
        "at": f.fetched_at.isoformat(timespec="seconds"),
        "remote_addr": f.remote_addr,
        "user_agent": f.user_agent,
        "config_hash": f.config_hash,
    }


# --------------------------------------------------------------------------- refusals


def _blocked(request: web.Request, source: str, mac: str) -> web.Response | None:
    state = request.app[ATA_STATE]
    now = state.clock()
    until = state.throttle.blocked_until(source, mac, now)
    if until is None:
        return None
    resp = problem_details(429, "too many failed provisioning requests from your address; try again later")
    resp.headers["Retry-After"] = str(max(1, int(until - now + 0.999)))
    return resp


def _failure(request: web.Request, source: str, mac: str, what: str) -> None:
    """Count one failed attempt and log it with the source address."""
    state = request.app[ATA_STATE]
    now = state.clock()
    throttle = state.throttle
    was_blocked = throttle.is_blocked(source, mac, now)
    throttle.record_failure(source, mac, now)
    log.warning(
        "provisioning: refused MAC %s from %s: %s (%s %s, UA %r)",
        mac, request.remote, what, request.method, request.path, request.headers.get("User-Agent", ""),
    )
    if not was_blocked and throttle.is_blocked(source, mac, now):
        until = throttle.blocked_until(source, mac, now) or now
        log.warning("provisioning: blocking %s for %.0f s after repeated failures (last MAC %s)",
                    source, until - now, mac)


async def _unknown(request: web.Request, source: str, mac: str) -> web.Response:
    deps = request.app[DEPS]
    ua = _ua(request)
    parsed = adapter_models.parse_user_agent(ua) if ua else None
    _failure(request, source, mac, "unknown MAC")
    await repo_adapters.record_unclaimed(
        deps.session_factory, mac, at=datetime.now(UTC), remote_addr=(request.remote or "?")[:64],
        user_agent=ua or None, model_hint=parsed.model_key if parsed else None,
    )
    return problem_details(404, "no such adapter")


def _ua_mismatch(request: web.Request, mac: str) -> str | None:
    """The MAC the User-Agent claims when it is not ``mac``, else None."""
    parsed = adapter_models.parse_user_agent(_ua(request))
    if parsed is not None and parsed.mac and parsed.mac != mac:
        return parsed.mac
    return None


async def _lookup(request: web.Request, filename: str) -> tuple[str, AdapterInfo] | web.Response:
    """Common first steps: file name -> MAC, throttle, adapter, User-Agent check."""
    parsed = parse_config_filename(filename)
    if parsed is None:
        return problem_details(404, "not found")
    mac, binary = parsed
    if binary:
        # Grandstream asks for its binary config first; we only serve XML. Says nothing
        # about whether the MAC exists, so it is neither counted nor recorded.
        return problem_details(404, "binary configs are not served; ask for the .xml file")
    source = source_key(request.remote)
    blocked = _blocked(request, source, mac)
    if blocked is not None:
        return blocked
    adapter = await repo_adapters.get_adapter_by_mac(request.app[DEPS].session_factory, mac)
    if adapter is None:
        return await _unknown(request, source, mac)
    claimed = _ua_mismatch(request, mac)
    if claimed is not None:
        _failure(request, source, mac, f"User-Agent names MAC {claimed}")
        return problem_details(403, "the User-Agent names another adapter")
    return source, adapter


async def _serve(request: web.Request, source: str, adapter: AdapterInfo, secret: str) -> web.StreamResponse:
    """Render, record the fetch, light PWR, answer."""
    deps = request.app[DEPS]
    state = request.app[ATA_STATE]
    state.throttle.record_success(source, adapter.mac, state.clock())
    origin = origin_of(request)
    try:
        body, content_type = await render_for(deps, adapter, origin, secret)
    except (render.ProfileError, LookupError) as exc:
        log.error("provisioning: cannot render config of %s: %s", adapter.mac, exc)
        return problem_details(500, "this adapter's configuration cannot be built; support has been told")
    ua = _ua(request)
    parsed = adapter_models.parse_user_agent(ua) if ua else None
    if parsed is not None and parsed.model_key and parsed.model_key != adapter.model:
        log.warning("provisioning: adapter %s is stored as %s but says it is %s (UA %r)",
                    adapter.mac, adapter.model, parsed.model, ua)
    await repo_adapters.record_config_fetch(
        deps.session_factory, adapter.adapter_id, at=datetime.now(UTC),
        remote_addr=(request.remote or "?")[:64], user_agent=ua or None, config_hash=config_hash(body),
        firmware=(parsed.firmware[:100] if parsed else None),
    )
    state.last_origin[adapter.adapter_id] = origin
    deps.status.config_fetched(adapter.adapter_id)
    if deps.metrics is not None:
        deps.metrics.fetched()
    log.info("provisioning: served %s (%d bytes) to %s", adapter.mac, len(body), request.remote)
    # Exact Content-Length, no chunking (old SPA firmware); never cached: it holds passwords.
    return web.Response(
        body=body,
        headers={"Content-Type": content_type, "Cache-Control": "no-store"},
    )


# --------------------------------------------------------------------------- handlers


async def token_config(request: web.Request) -> web.StreamResponse:
    """GET /cfg/{token}/{filename}: the profile URL written into every config."""
    found = await _lookup(request, request.match_info["filename"])
    if isinstance(found, web.StreamResponse):
        return found
    source, adapter = found
    deps = request.app[DEPS]
    secret = await repo_adapters.get_provisioning_secret(
        deps.session_factory, adapter.adapter_id, deps.secret_box
    )
    expected = adapter_credentials(secret, adapter.mac).url_token if secret else ""
    given = request.match_info["token"]
    # compare_digest: the time taken does not tell how much of a guess was right.
    if not secret or not hmac.compare_digest(given.encode("ascii"), expected.encode("ascii")):
        _failure(request, source, adapter.mac, "wrong token")
        return problem_details(403, "this URL does not open this adapter's configuration")
    return await _serve(request, source, adapter, secret)


def _challenge(request: web.Request, stale: bool = False) -> web.Response:
    state = request.app[ATA_STATE]
    resp = problem_details(401, "authentication required: HTTP Digest, username = the adapter's MAC")
    for ch in digest.challenges_for(DIGEST_REALM, state.nonces, state.clock(), stale=stale,
                                    algorithms=state.algorithms):
        resp.headers.add("WWW-Authenticate", ch.to_header())
    return resp


def _digest_credentials(request: web.Request) -> digest.Credentials | None:
    for value in request.headers.getall("Authorization", []):
        if not value.lstrip().lower().startswith("digest"):
            continue
        try:
            creds = digest.parse_credentials(value)
        except digest.DigestError:
            continue
        if creds.realm == DIGEST_REALM:
            return creds
    return None


async def digest_config(request: web.Request) -> web.StreamResponse:
    """GET /cfg/{filename} behind HTTP Digest (RFC 7616): where the bootstrap files point."""
    found = await _lookup(request, request.match_info["filename"])
    if isinstance(found, web.StreamResponse):
        return found
    source, adapter = found
    state = request.app[ATA_STATE]
    creds = _digest_credentials(request)
    if creds is None:
        return _challenge(request)
    now = state.clock()
    status = state.verifier.screen(creds, now)
    if status is None:
        return _challenge(request)
    # RFC 7616 §3.4.6 (RFC 2617 §3.2.2.5): the digest must be for this very request target.
    if creds.uri not in (request.raw_path, request.path):
        _failure(request, source, adapter.mac, "digest for another URI")
        return _challenge(request)
    if creds.username.lower() != adapter.mac:
        # Another adapter's credentials (or a typo): never valid for this MAC.
        _failure(request, source, adapter.mac, f"digest username {creds.username!r}")
        return _challenge(request)
    deps = request.app[DEPS]
    secret = await repo_adapters.get_provisioning_secret(
        deps.session_factory, adapter.adapter_id, deps.secret_box
    )
    if secret is None:
        return _challenge(request)
    mine = adapter_credentials(secret, adapter.mac)
    algorithm = digest.canonical_algorithm(creds.algorithm) or "MD5"
    ha1 = digest.ha1(mine.digest_user, DIGEST_REALM, mine.digest_password, algorithm)
    verdict = state.verifier.conclude(creds, request.method, ha1, status, now)
    if verdict is Verdict.WRONG:
        _failure(request, source, adapter.mac, "wrong digest password")
        return _challenge(request)
    if verdict is Verdict.STALE:
        return _challenge(request, stale=True)
    if verdict is Verdict.REPLAY:
        return _challenge(request)  # a replayed nonce count
    return await _serve(request, source, adapter, secret)


# --------------------------------------------------------------------------- bootstrap


def _bootstrap_base(request: web.Request) -> str:
    return origin_of(request) + CFG_PREFIX


def _bootstrap_response(body: bytes) -> web.Response:
    return web.Response(body=body, headers={"Content-Type": "text/xml; charset=utf-8", "Cache-Control": "no-store"})


def _generic_bootstrap(model: str) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.StreamResponse:
        """A vendor's generic first-contact name: points the adapter at /cfg/ (no secrets)."""
        key = model
        parsed = adapter_models.parse_user_agent(_ua(request))
        if parsed is not None and parsed.model_key:
            info, mine = adapter_models.MODELS[parsed.model_key], adapter_models.MODELS[model]
            if info.bootstrap_template == mine.bootstrap_template:
                key = parsed.model_key
        return _bootstrap_response(render.render_bootstrap(key, None, _bootstrap_base(request)))

    handler.__name__ = f"bootstrap_{model}"
    return handler


async def grandstream_first_request(request: web.Request) -> web.StreamResponse:
    """GET /cfg<mac>.xml at the unauthenticated location (DHCP option 66 points here)."""
    found = await _lookup(request, request.match_info["name"])
    if isinstance(found, web.StreamResponse):
        return found
    _, adapter = found
    info = adapter_models.MODELS.get(adapter.model)
    if info is None or info.bootstrap_template is None:
        return problem_details(404, "no first-contact file for this model")
    body = render.render_bootstrap(adapter.model, adapter.mac, _bootstrap_base(request))
    return _bootstrap_response(body)


def bootstrap_routes() -> list[web.AbstractRouteDef]:
    """One route per generic name in ``adapter_models.MODELS``, plus Grandstream's per-MAC name."""
    defs: list[web.AbstractRouteDef] = []
    seen: set[str] = set()
    for key, info in adapter_models.MODELS.items():
        names: list[str] = []
        if info.bootstrap_template is None:
            continue
        if info.bootstrap_filename and "{" not in info.bootstrap_filename:
            names.append(info.bootstrap_filename)
        if info.vendor == "grandstream":
            names.append(f"cfg{key}.xml")  # the model file Grandstream tries before cfg.xml
        for name in names:
            if name in seen:
                continue
            seen.add(name)
            defs.append(web.get("/" + name, _generic_bootstrap(key)))
    defs.append(web.get(r"/{name:cfg[0-9A-Fa-f]{12}(?:\.xml|\.bin)?}", grandstream_first_request))
    return defs
