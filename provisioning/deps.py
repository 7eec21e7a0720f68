"""What the HTTP side is given: a small typed set of what its handlers use, nothing more.

The composition root (``switch.app``) builds an ``HttpDeps`` from the running
switch; a test builds one from a database and the in-memory services alone,
without sockets or a SIP endpoint. The protocols name the few operations the
handlers call, so what provisioning depends on is written down here and
nowhere else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from switch.services.adapter_status import Lamp, ReachKey
from switch.services.lines import LineInfo
from switch.services.location import Binding
from switch.services.policy.service import PolicyService
from switch.services.rating.service import RatingService
from switch.services.star_codes import StarCodes
from switch.services.resync import NotifyOutcome
from switch.store.crypto import SecretBox
from switch.store.repo_adapters import AdapterInfo
from switch.store.engine import SessionFactory
from switch.store.rows import Reachability

from .ui.deps import UiDeps

__all__ = ["BindingView", "HttpDeps", "LampView", "LineView", "MetricsView", "ProvisioningConfig", "Resync"]


class LampView(Protocol):
    """The adapters' lamps (``switch.services.adapter_status.AdapterStatusService``)."""

    @property
    def reach(self) -> Mapping[ReachKey, Reachability]: ...

    def status(self, adapter_id: int) -> dict[str, Lamp]: ...

    def config_fetched(self, adapter_id: int) -> None: ...


class BindingView(Protocol):
    """Registered contacts (``switch.services.location.LocationService``)."""

    def bindings(self, line_id: int) -> list[Binding]: ...

    def replace(self, line_id: int, new: list[Binding], done: Callable[[BaseException | None], None]) -> None:
        """Set a line's bindings (the operator API drops those of a line it disabled or deleted)."""
        ...


class LineView(Protocol):
    """The lines in memory (``switch.services.lines.LineDirectory``)."""

    def adapter_lines(self, adapter_id: int) -> list[LineInfo]: ...

    @property
    def by_id(self) -> Mapping[int, LineInfo]: ...

    async def reload(self) -> None:
        """Read the lines again now (after the operator API changed them), not at the next 5 s check."""
        ...


class MetricsView(Protocol):
    """The switch's Prometheus metrics (``switch.services.metrics.Metrics``)."""

    def render(self) -> bytes: ...

    def fetched(self) -> None:
        """Count one config served."""
        ...


class Resync(Protocol):
    """Make an adapter fetch its config now (``switch.services.resync.ResyncService``)."""

    async def resync_adapter(self, adapter: AdapterInfo, actor: str, wait: float) -> tuple[str, list[NotifyOutcome]]:
        """Send the adapter model's NOTIFY event to its registered contacts and audit it; (event, outcomes)."""
        ...


@dataclass(frozen=True, slots=True)
class ProvisioningConfig:
    """The settings the HTTP side renders, authenticates and bills with."""

    #: signs the HTTP digest nonces (derived from the key for secrets at rest, never the key itself)
    nonce_secret: bytes
    #: the SIP digest realm: the HA1 hashes of lines the operator API creates are for it
    realm: str = ""
    digest_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    nonce_lifetime: float = 300.0
    #: the first SIP listening address: written into configs as the proxy
    sip_listen: tuple[str, int] = ("127.0.0.1", 5060)
    #: the SIP domain written into configs (None: the proxy host)
    sip_domain: str | None = None
    min_expires: int = 60
    max_expires: int = 7200
    #: billing periods (the billing API) are calendar months in this zone
    billing_timezone: str = "Europe/Oslo"
    #: credit limit: how far past it a call in progress may go before it is cut (øre; the credit API shows it)
    credit_cut_margin_ore: int = 5000
    #: ``/metrics``: a bearer token of its own (else an operator API token) ...
    metrics_token: str | None = None
    #: ... or a listener of its own serving only ``/metrics``, without a token
    metrics_listen: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class HttpDeps:
    """Everything the HTTP handlers use."""

    session_factory: SessionFactory
    secret_box: SecretBox
    config: ProvisioningConfig
    status: LampView
    location: BindingView
    lines: LineView
    #: None when no SIP side runs: the resync route answers 503
    resync: Resync | None = None
    #: figures of the running switch for ``/health`` (SIP core, GC, bindings, SIP counters)
    health: Callable[[], dict[str, object]] = lambda: {}
    #: call policy (forwarding, barring, suspensions); None: the policy API answers 503
    policy: PolicyService | None = None
    #: prices and the credit limit (the credit API reads its running totals); None: read from the database
    rating: RatingService | None = None
    #: star codes (``*21*N#``...) and their per-code policy; None: the feature-codes API answers 503
    star_codes: StarCodes | None = None
    #: None: ``/metrics`` answers 503
    metrics: MetricsView | None = None
    #: the web pages' own set (provisioning/ui/deps.py); None: no /ui/ and /min-side/
    ui: UiDeps | None = None
    #: reload the trunks and routes into the running switch now (not at the next 30 s tick); None: no SIP side
    routing_reload: Callable[[], Awaitable[object]] | None = None
