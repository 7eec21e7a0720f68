"""Render per-adapter ATA configuration files from the Jinja2 templates in ``ata_templates/``.

Why this module exists: every supported adapter keeps the old value of any parameter that a
profile leaves out, so a profile must state *everything* we rely on -- including that an unused
port is switched off -- and every value must survive XML escaping intact.  This module is pure:
it turns an :class:`AdapterProfile` (already loaded from the database by the caller) into bytes.
It never touches the database, the network or the clock.

Division of labour:

* Python (here) validates the profile, converts units (Grandstream registration expiry is in
  **minutes**, Cisco/Linksys in **seconds**), splits the profile URL into the pieces each vendor
  wants and decides, per port, whether the port is enabled and whether it is an alarm line.
* The templates hold all vendor knowledge: parameter names, P-values, tone syntax.  Each name a
  template relies on is listed with its source and confidence in ``ata_templates/README.md``.

What each model is (template, file names, transports, units, capabilities) comes from the
one model registry, ``switch.store.adapter_models``; this module only renders.

Jinja2 runs with XML autoescaping and :class:`jinja2.StrictUndefined`, so a value containing
``<>&"'`` comes out escaped and a typo in a template fails loudly instead of rendering "".
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

import jinja2

from switch.store.adapter_models import MODELS, ModelInfo

__all__ = [
    "DEFAULT_TEMPLATES_DIR",
    "AdapterProfile",
    "LineProfile",
    "ProfileError",
    "UnsupportedProfileError",
    "bootstrap_files",
    "config_filename",
    "make_environment",
    "render_bootstrap",
    "render_config",
]

DEFAULT_TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "ata_templates"

_MAC_RE = re.compile(r"^[0-9a-f]{12}$")
_NUMBER_RE = re.compile(r"^[0-9]{1,15}$")  # E.164 without '+' (ITU-T E.164 section 6: max 15 digits)
# XML 1.0 section 2.2: C0 controls other than TAB/LF/CR are not allowed at all; we also refuse
# TAB/LF/CR because no single-line device parameter can carry them.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_GS_MAX_EXPIRES_MIN = 64800  # Grandstream "Register Expiration": 1..64800 minutes (45 days)
_GS_MIN_CHECK_MIN = 60  # Grandstream P193 "check every () minutes": minimum 60


class ProfileError(ValueError):
    """The profile cannot be rendered into a configuration the adapter will accept safely."""


class UnsupportedProfileError(ProfileError):
    """The profile is valid, but this model cannot express it with verified parameters."""


# --------------------------------------------------------------------------------------------
# Input model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineProfile:
    """One telephone port as stored in the database.

    ``number`` (E.164 digits, no '+') becomes the SIP *user part* the adapter registers and
    calls from (Cisco ``User_ID_n_``, Grandstream ``P35``/``P4060``, OBi ``URI``);
    ``auth_user`` is used only for the digest username; ``display_name`` is the caller-ID
    name in From.  ``language`` is for the switch's announcements; the adapters do not use it.
    """

    port: int
    enabled: bool
    number: str
    auth_user: str
    password: str
    display_name: str = ""
    alarm: bool = False
    language: str = "nb"


@dataclass(frozen=True, slots=True, kw_only=True)
class AdapterProfile:
    """Everything needed to render one adapter's configuration (times in seconds)."""

    mac: str
    model: str
    lines: tuple[LineProfile, ...]
    sip_domain: str
    sip_proxy_host: str
    sip_proxy_port: int
    profile_url: str
    sip_transport: str = "udp"
    register_expires: int = 3600
    alarm_register_expires: int = 300
    provisioning_user: str = ""
    provisioning_password: str = ""
    resync_interval: int = 3600
    resync_retry_interval: int = 600
    """Cisco ``Resync_Error_Retry_Delay``: retry sooner than the periodic resync after a failure."""
    notify_requires_auth: bool = True
    """Whether the adapter challenges the switch's resync NOTIFY (Grandstream P4428, OBi
    X_AcceptResync).  Cisco/Linksys always challenge, so the switch must answer 401 anyway."""
    admin_password: str = ""
    """Adapter web-UI admin password; empty leaves the device's current one untouched."""
    ntp_server: str = "pool.ntp.org"
    timezone: str = "Europe/Oslo"


# --------------------------------------------------------------------------------------------
# Time zones: only zones whose vendor syntax we are sure of (README "Time zone").
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _TimeZone:
    spa_zone: str  # Cisco/Linksys Time_Zone choice
    spa_dst_rule: str  # Cisco/Linksys Daylight_Saving_Time_Rule (month/day/weekday/HH)
    posix: str  # Grandstream P64 value (POSIX TZ string from Grandstream's own list)


# EU rule: DST from the last Sunday of March 02:00 local to the last Sunday of October 03:00.
_CET = _TimeZone(
    spa_zone="GMT+01:00",
    spa_dst_rule="start=3/-1/7/2;end=10/-1/7/3;save=1",
    posix="CET-1CEST-2,M3.5.0/02:00:00,M10.5.0/03:00:00",
)
_TIMEZONES: Mapping[str, _TimeZone] = MappingProxyType({
    "Europe/Oslo": _CET,
    "Europe/Stockholm": _CET,
    "Europe/Copenhagen": _CET,
    "Europe/Berlin": _CET,
})


# --------------------------------------------------------------------------------------------
# View objects handed to the templates (already validated and converted)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PortView:
    port: int
    enabled: bool
    alarm: bool
    user: str
    auth_user: str
    password: str
    display_name: str
    expires_s: int
    expires_min: int


@dataclass(frozen=True, slots=True)
class _ExpiresView:
    """Registration expiry in minutes for normal and alarm lines (Grandstream HT812 profiles)."""

    normal: int
    alarm: int


@dataclass(frozen=True, slots=True)
class _ProvisioningView:
    url: str
    spa_rule: str  # Cisco Profile_Rule incl. "[--uid u --pwd p]" and "$" escaped as "$$"
    gs_scheme: int  # Grandstream P212: 1 HTTP, 2 HTTPS
    gs_path: str  # Grandstream P237: host[:port]/dir, no scheme, no file name
    user: str
    password: str
    resync_s: int
    resync_min: int
    retry_s: int


@dataclass(frozen=True, slots=True)
class _SipView:
    domain: str
    proxy_host: str
    proxy_port: int
    transport: str  # udp | tcp | tls
    outbound_proxy: str  # "host:port"


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _text(name: str, value: str) -> str:
    if _CONTROL_RE.search(value):
        raise ProfileError(f"{name} contains a control character, which XML cannot carry")
    return value


def _model(key: str) -> ModelInfo:
    try:
        return MODELS[key]
    except KeyError:
        raise ProfileError(f"unknown model {key!r}; known: {', '.join(sorted(MODELS))}") from None


def _mac(mac: str) -> str:
    if not _MAC_RE.fullmatch(mac):
        raise ProfileError(f"MAC {mac!r} must be 12 lower-case hex digits without separators")
    return mac


def _positive(name: str, value: int) -> int:
    if value <= 0:
        raise ProfileError(f"{name} must be a positive number of seconds, got {value}")
    return value


def _minutes(seconds: int) -> int:
    """Seconds -> whole minutes, rounded *up* so the registrar never sees less than asked."""
    return max(1, math.ceil(seconds / 60))


def _expires_min(info: ModelInfo, name: str, seconds: int) -> int:
    minutes = _minutes(_positive(name, seconds))
    if info.expires_unit == "min" and minutes > _GS_MAX_EXPIRES_MIN:
        raise ProfileError(f"{name} {seconds}s exceeds the 45-day maximum of {info.display_name}")
    return minutes


def _host(name: str, value: str) -> str:
    if not value or any(ch in value for ch in " /?#@[]<>\"'") or _CONTROL_RE.search(value):
        raise ProfileError(f"{name} {value!r} is not a bare host name or address")
    return value


def _ascii_credential(name: str, value: str) -> str:
    # Grandstream documents P1360/P1361 as "between ascii values 33 and 126"; Cisco's
    # "[--uid u --pwd p]" option syntax breaks on white space and brackets.
    if any(not 33 <= ord(ch) <= 126 for ch in value) or "[" in value or "]" in value:
        raise ProfileError(f"{name} must be printable ASCII without spaces or brackets")
    return value


def _split_url(url: str) -> tuple[str, str, str, str]:
    """Return (scheme, netloc, path, query) of an http(s) URL without user info or fragment."""
    _text("profile URL", url)
    if any(ch.isspace() for ch in url):
        raise ProfileError("profile URL must not contain white space")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ProfileError(f"URL {url!r} must be absolute http:// or https://")
    if "@" in parts.netloc:
        raise ProfileError("put provisioning credentials in provisioning_user/password, not the URL")
    if parts.fragment:
        raise ProfileError("URL must not contain a fragment")
    return parts.scheme, parts.netloc, parts.path, parts.query


def _port_view(port: int, line: LineProfile | None, profile: AdapterProfile,
               info: ModelInfo) -> _PortView:
    if line is None or not line.enabled:
        expires = profile.register_expires
        return _PortView(port=port, enabled=False, alarm=False, user="", auth_user="",
                         password="", display_name="", expires_s=expires,
                         expires_min=_minutes(expires))
    if not _NUMBER_RE.fullmatch(line.number):
        raise ProfileError(f"port {port}: number {line.number!r} must be E.164 digits without '+'")
    if not line.auth_user or not line.password:
        raise ProfileError(f"port {port}: an enabled line needs auth_user and password")
    if line.alarm and not info.alarm_lines:
        raise UnsupportedProfileError(
            f"{info.display_name} cannot host an alarm line: G.711-only and no silence "
            "suppression cannot be set with verified parameters (see ata_templates/README.md)"
        )
    expires = profile.alarm_register_expires if line.alarm else profile.register_expires
    return _PortView(
        port=port, enabled=True, alarm=line.alarm, user=line.number,
        auth_user=_text("auth_user", line.auth_user), password=_text("password", line.password),
        display_name=_text("display_name", line.display_name), expires_s=expires,
        expires_min=_minutes(expires),
    )


def _ports(profile: AdapterProfile, info: ModelInfo) -> tuple[_PortView, ...]:
    by_port: dict[int, LineProfile] = {}
    for line in profile.lines:
        if not 1 <= line.port <= info.ports:
            raise ProfileError(f"{info.display_name} has ports 1..{info.ports}, not {line.port}")
        if line.port in by_port:
            raise ProfileError(f"port {line.port} appears twice")
        by_port[line.port] = line
    return tuple(_port_view(n, by_port.get(n), profile, info) for n in range(1, info.ports + 1))


def _spa_escape(value: str) -> str:
    # Cisco macro expansion: "$$" is a literal "$" (SPA provisioning guide, macro table).
    return value.replace("$", "$$")


def _provisioning(profile: AdapterProfile, info: ModelInfo) -> _ProvisioningView:
    scheme, netloc, path, query = _split_url(profile.profile_url)
    user = _ascii_credential("provisioning_user", profile.provisioning_user)
    password = _ascii_credential("provisioning_password", profile.provisioning_password)
    if password and not user:
        raise ProfileError("provisioning_password given without provisioning_user")
    if (user or password) and not info.http_digest:
        raise UnsupportedProfileError(
            f"{info.display_name}: no verified way to send HTTP credentials; use a URL token"
        )
    rule = _spa_escape(profile.profile_url)
    if user:
        rule = f"[--uid {_spa_escape(user)} --pwd {_spa_escape(password)}]{rule}"
    gs_path = ""
    if info.family in ("ht80x", "ht81x"):
        # Grandstream appends "cfg<mac>.xml" to P237 itself, so the URL must end in exactly
        # that name and carry no query string.
        filename = config_filename(profile)
        if query or not path.endswith("/" + filename):
            raise ProfileError(f"Grandstream profile URL must end in /{filename} with no query")
        gs_path = netloc + path[: -len(filename) - 1]
    resync = _positive("resync_interval", profile.resync_interval)
    return _ProvisioningView(
        url=profile.profile_url, spa_rule=rule, gs_scheme=1 if scheme == "http" else 2,
        gs_path=gs_path, user=user, password=password, resync_s=resync,
        resync_min=max(_GS_MIN_CHECK_MIN, _minutes(resync)),
        retry_s=_positive("resync_retry_interval", profile.resync_retry_interval),
    )


def _sip(profile: AdapterProfile, info: ModelInfo) -> _SipView:
    transport = profile.sip_transport
    if transport not in info.transports:
        raise ProfileError(
            f"{info.display_name} supports transports {sorted(info.transports)}, not {transport!r}"
        )
    if not 1 <= profile.sip_proxy_port <= 65535:
        raise ProfileError(f"sip_proxy_port {profile.sip_proxy_port} out of range")
    domain = _host("sip_domain", profile.sip_domain)
    host = _host("sip_proxy_host", profile.sip_proxy_host)
    return _SipView(domain=domain, proxy_host=host, proxy_port=profile.sip_proxy_port,
                    transport=transport, outbound_proxy=f"{host}:{profile.sip_proxy_port}")


def _timezone(name: str) -> _TimeZone:
    try:
        return _TIMEZONES[name]
    except KeyError:
        raise ProfileError(
            f"time zone {name!r} not supported; known: {', '.join(sorted(_TIMEZONES))}"
        ) from None


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def make_environment(templates_dir: Path = DEFAULT_TEMPLATES_DIR) -> jinja2.Environment:
    """A Jinja2 environment that escapes every value for XML and fails on undefined names."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@lru_cache(maxsize=1)
def _default_environment() -> jinja2.Environment:
    return make_environment()


def config_filename(profile: AdapterProfile) -> str:
    """The per-adapter file name: MAC lower-case without separators (e.g. cfg000b82aabbcc.xml)."""
    return _model(profile.model).config_filename_pattern.format(mac=_mac(profile.mac))


def render_config(profile: AdapterProfile, *, env: jinja2.Environment | None = None) -> bytes:
    """Render the adapter's complete configuration as UTF-8 bytes.

    Raises :class:`ProfileError` (a ValueError) when the profile would produce a file the
    adapter rejects or misreads, and :class:`UnsupportedProfileError` when the model cannot
    express it with verified parameters (e.g. an alarm line on the OBi202).
    """
    info = _model(profile.model)
    mac = _mac(profile.mac)
    context = {
        "model": info,
        "mac": mac,
        "ports": _ports(profile, info),
        "expires_min": _ExpiresView(
            normal=_expires_min(info, "register_expires", profile.register_expires),
            alarm=_expires_min(info, "alarm_register_expires", profile.alarm_register_expires),
        ),
        "sip": _sip(profile, info),
        "prov": _provisioning(profile, info),
        "tz": _timezone(profile.timezone),
        "ntp_server": _host("ntp_server", profile.ntp_server),
        "admin_password": _text("admin_password", profile.admin_password),
        "notify_requires_auth": profile.notify_requires_auth,
    }
    template = (env or _default_environment()).get_template(info.template)
    return template.render(context).encode("utf-8")


def bootstrap_files() -> list[tuple[str, str]]:
    """Generic first-contact names the provisioning server should answer, with a description.

    ``{mac}`` in a name stands for the lower-case MAC.  Files are served *without*
    authentication and contain no secrets: they only point the adapter at its own profile URL.
    """
    files: list[tuple[str, str]] = []
    for info in MODELS.values():
        if info.family == "spa" and info.bootstrap_filename:
            files.append((info.bootstrap_filename,
                          f"{info.display_name} factory Profile_Rule target "
                          "(render_bootstrap(model, None, base_url))"))
    files.append(("cfg{mac}.xml", "Grandstream HT802/HT812 first request after boot, at the "
                  "unauthenticated location (render_bootstrap(model, mac, base_url))"))
    files.append(("cfg.xml", "Grandstream generic fallback when cfg<mac>.xml is not found "
                  "(render_bootstrap(model, None, base_url))"))
    return files


def render_bootstrap(model: str, mac: str | None, base_url: str, *,
                     env: jinja2.Environment | None = None) -> bytes:
    """Render the first-contact file that points an adapter at ``base_url``.

    ``base_url`` is the directory holding the per-adapter files (it may already contain the
    adapter's token segment when the server recognised the MAC).  With ``mac=None`` the
    file uses the vendor's MAC macro (Cisco ``$MA``) or none at all (Grandstream appends
    ``cfg<mac>.xml`` to the configured path itself).  No credentials of any kind are written.
    """
    info = _model(model)
    if info.bootstrap_template is None:
        raise UnsupportedProfileError(f"{info.display_name}: no verified first-contact file")
    scheme, netloc, path, query = _split_url(base_url)
    if query:
        raise ProfileError("base_url must be a directory URL without a query string")
    directory = path.rstrip("/")
    if mac is None:
        spa_name = "spa$MA.xml"  # $MA = MAC, lower-case, no separators (Cisco macro table)
    else:
        spa_name = info.config_filename_pattern.format(mac=_mac(mac))
    context = {
        "model": info,
        "mac": None if mac is None else _mac(mac),
        "spa_rule": f"{_spa_escape(f'{scheme}://{netloc}{directory}')}/{spa_name}",
        "gs_scheme": 1 if scheme == "http" else 2,
        "gs_path": netloc + directory,
    }
    template = (env or _default_environment()).get_template(info.bootstrap_template)
    return template.render(context).encode("utf-8")
