"""The one registry of supported adapter (ATA) models and what each can do.

Why one table: the importer and the operator API refuse unknown models, the
store records each adapter's vendor, the provisioning server picks the template,
file names and first-contact file, and the resync API picks the NOTIFY event --
all from this table, so adding a model is one entry here plus its template (and
``tests/provisioning/test_model_registry.py`` proves every entry renders).

It lives in ``switch.store`` because the store is the lowest layer that needs it
(``provisioning`` may import the store, not the other way round). Pure data:
no database, no I/O. Sources for every fact: ata_templates/README.md.

Recognising a model from a User-Agent (``parse_user_agent``) is here too: it is
how the provisioning server and the unclaimed-adapter list name what called.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "ADAPTER_MODELS",
    "MODELS",
    "ModelInfo",
    "UAInfo",
    "model_info",
    "parse_user_agent",
]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """Static facts about one supported model (sources: ata_templates/README.md)."""

    key: str
    vendor: str  # cisco | linksys | grandstream | obihai
    vendor_name: str  # "Cisco", as stored in adapters.vendor and shown to operators
    family: str  # spa | ht80x | ht81x | obi
    display_name: str
    template: str
    content_type: str  # the config format: every supported model reads XML
    config_filename_pattern: str  # str.format() pattern with {mac}
    user_agent_re: re.Pattern[str]  # named groups: firmware, and mac/serial where present
    bootstrap_template: str | None  # None: no verified first-contact file
    bootstrap_filename: str | None  # the vendor's generic first-contact name
    transports: frozenset[str]
    expires_unit: str  # "s" or "min" -- the unit the device expects for registration expiry
    http_digest: bool  # profile can carry HTTP user/password for the config fetch
    alarm_lines: bool  # G.711-only / no-VAD can be expressed with verified parameters
    resync_event: str  # SIP NOTIFY Event that makes it re-fetch its config (ATA_FORMATS.md)
    ports: int = 2  # FXS ports, numbered 1..ports
    experimental: bool = False  # format only partly verified; see README before deploying

    @property
    def bootstrap(self) -> bool:
        """Whether the provisioning server can hand it a first-contact file."""
        return self.bootstrap_template is not None


_XML = "text/xml; charset=utf-8"
_ALL_TRANSPORTS = frozenset({"udp", "tcp", "tls"})
# NOTIFY events (ATA_FORMATS.md): Cisco/Linksys "resync" (Linksys provisioning guide),
# Grandstream "check-sync" (Grandstream provisioning guide; FusionPBX sends "resync" too),
# OBi "resync" (X_AcceptResync).
_SPA_RESYNC = "resync"
_GS_RESYNC = "check-sync"
_OBI_RESYNC = "resync"


def _cisco_ua(model: str) -> re.Pattern[str]:
    # "Cisco/SPA112-1.4.1(SR5) (88755A000001)(CCQ1234ABCD)"; the MAC group is optional and a
    # lone group is the serial number (same reading as Wazo's Cisco HTTP extractor).
    return re.compile(
        rf"^Cisco/{model}-(?P<firmware>\S+)"
        r"(?: (?:\((?P<mac>[0-9A-Fa-f]{12})\))?\((?P<serial>\w+)\))?$"
    )


def _linksys_ua(model: str) -> re.Pattern[str]:
    # "Linksys/PAP2T-5.1.6(LS) (4MM00F903042)"; the group is the serial, never the MAC.
    return re.compile(rf"^Linksys/{model}-(?P<firmware>[^\s-]+)(?: \((?P<serial>\w+)\))?$")


def _grandstream_ua(model: str) -> re.Pattern[str]:
    # "Grandstream Model HW HT802 V2.1A SW 1.0.17.5 DevId c074ad273a10"
    return re.compile(
        rf"^Grandstream Model HW {model}(?:\s+V\S+)? SW (?P<firmware>\S+) "
        r"DevId (?P<mac>(?:[0-9A-Fa-f]{2}:?){5}[0-9A-Fa-f]{2})\b"
    )


def _spa(key: str, vendor: str, display: str, ua: re.Pattern[str], boot: str,
         transports: frozenset[str]) -> ModelInfo:
    return ModelInfo(
        key=key, vendor=vendor, vendor_name=vendor.capitalize(), family="spa", display_name=display,
        template="spa.xml.j2", content_type=_XML, config_filename_pattern="spa{mac}.xml",
        user_agent_re=ua, bootstrap_template="spa_bootstrap.xml.j2", bootstrap_filename=boot,
        transports=transports, expires_unit="s", http_digest=True, alarm_lines=True,
        resync_event=_SPA_RESYNC,
    )


def _gs(key: str, family: str, display: str, model: str) -> ModelInfo:
    return ModelInfo(
        key=key, vendor="grandstream", vendor_name="Grandstream", family=family, display_name=display,
        template=f"{family}.xml.j2", content_type=_XML, config_filename_pattern="cfg{mac}.xml",
        user_agent_re=_grandstream_ua(model), bootstrap_template="grandstream_bootstrap.xml.j2",
        bootstrap_filename="cfg.xml", transports=_ALL_TRANSPORTS, expires_unit="min",
        http_digest=True, alarm_lines=True, resync_event=_GS_RESYNC,
    )


MODELS: Mapping[str, ModelInfo] = MappingProxyType({
    "spa112": _spa("spa112", "cisco", "Cisco SPA112", _cisco_ua("SPA112"), "spa112.cfg",
                   _ALL_TRANSPORTS),
    "spa122": _spa("spa122", "cisco", "Cisco SPA122", _cisco_ua("SPA122"), "spa122.cfg",
                   _ALL_TRANSPORTS),
    # PAP2T / SPA2102 firmware 5.x only speaks SIP over UDP.
    "pap2t": _spa("pap2t", "linksys", "Linksys PAP2T", _linksys_ua("PAP2T"), "init.cfg",
                  frozenset({"udp"})),
    "spa2102": _spa("spa2102", "linksys", "Linksys SPA2102", _linksys_ua("SPA-?2102"),
                    "spa2102.cfg", frozenset({"udp"})),
    "ht802": _gs("ht802", "ht80x", "Grandstream HT802", "HT802"),
    "ht812": _gs("ht812", "ht81x", "Grandstream HT812", "HT812"),
    "obi202": ModelInfo(
        key="obi202", vendor="obihai", vendor_name="Obihai", family="obi",
        display_name="Obihai OBi202", template="obi.xml.j2", content_type=_XML,
        config_filename_pattern="obi{mac}.xml",
        user_agent_re=re.compile(r"^OBIHAI/OBi202-(?P<firmware>[0-9][0-9.]*)\b"),
        bootstrap_template=None, bootstrap_filename=None, transports=_ALL_TRANSPORTS,
        expires_unit="s", http_digest=False, alarm_lines=False, resync_event=_OBI_RESYNC,
        experimental=True,
    ),
})

#: The model keys, in the order operators see them listed.
ADAPTER_MODELS: tuple[str, ...] = tuple(MODELS)


def model_info(key: str) -> ModelInfo | None:
    """The registry entry for ``key`` (as stored: lower case), None when unsupported."""
    return MODELS.get(key)


# --------------------------------------------------------------------------------------------
# User-Agent parsing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UAInfo:
    """What an adapter's HTTP (or SIP) User-Agent says about it.

    ``model`` is normalised (lower case, no '-'), ``model_key`` is that model when it is in
    :data:`MODELS`.  The MAC is only present where the vendor puts it in the string; never
    trust it alone -- authenticate the adapter.
    """

    vendor: str
    model: str
    firmware: str
    mac: str | None = None
    serial: str | None = None
    model_key: str | None = None


_UA_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("cisco", re.compile(
        r"^Cisco/(?P<model>\w+)-(?P<firmware>\S+)"
        r"(?: (?:\((?P<mac>[0-9A-Fa-f]{12})\))?\((?P<serial>\w+)\))?$")),
    ("linksys", re.compile(
        r"^Linksys/(?P<model>[\w-]+)-(?P<firmware>[^\s-]+)(?: \((?P<serial>\w+)\))?$")),
    ("grandstream", re.compile(
        r"^Grandstream Model HW (?P<model>\w+)(?:\s+V\S+)? SW (?P<firmware>\S+) "
        r"DevId (?P<mac>(?:[0-9A-Fa-f]{2}:?){5}[0-9A-Fa-f]{2})\b")),
    ("grandstream", re.compile(r"^Grandstream (?P<model>HT[-\w]+) (?P<firmware>\d[\d.]*)\b")),
    ("obihai", re.compile(r"^OBIHAI/(?P<model>OBi\w+)-(?P<firmware>[0-9][0-9.]*)\b")),
)


def parse_user_agent(ua: str) -> UAInfo | None:
    """Parse a Cisco, Linksys, Grandstream or Obihai User-Agent; ``None`` if unrecognised."""
    for vendor, pattern in _UA_PATTERNS:
        match = pattern.match(ua.strip())
        if match is None:
            continue
        groups = match.groupdict()
        model = groups["model"].replace("-", "").lower()
        raw_mac = groups.get("mac")
        mac = raw_mac.replace(":", "").lower() if raw_mac else None
        return UAInfo(
            vendor=vendor, model=model, firmware=groups["firmware"], mac=mac,
            serial=groups.get("serial"), model_key=model if model in MODELS else None,
        )
    return None
