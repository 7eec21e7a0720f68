"""What the web pages use of the running switch: a small typed bag, no service container.

The pages read the database for customers, adapters, lines and call
records, and ask the running switch only for what lives in memory (lamps,
registrations, calls in progress) and for the actions it carries out (resync).
Tests build it from real parts without starting the SIP side.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from switch.services.rating.service import RatingService
from switch.store.crypto import SecretBox
from switch.store.engine import SessionFactory
from switch.transport.ratelimit import AuthThrottle

__all__ = ["LampView", "UiDeps", "UI_DEPS"]


class LampView(Protocol):
    """A lamp as the switch computes it (``switch.services.adapter_status.Lamp``)."""

    @property
    def state(self) -> str: ...

    @property
    def reason(self) -> str: ...

    @property
    def since(self) -> float: ...


@dataclass(frozen=True, slots=True)
class BindingView:
    contact: str
    received: str
    transport: str
    expires_in: int
    user_agent: str | None


@dataclass
class UiDeps:
    session_factory: SessionFactory
    #: adapter row id → {"pwr"|"wan"|"tel1"|"tel2": lamp}
    lamps: Callable[[int], Mapping[str, LampView]]
    #: line row id → its registered contacts
    bindings: Callable[[int], Sequence[BindingView]] = lambda _line_id: ()
    calls_in_progress: Callable[[], int] = lambda: 0
    registered_lines: Callable[[], int] = lambda: 0
    #: (MAC as 12 hex digits, actor) → a sentence saying what was done; None when resync is not wired
    resync: Callable[[str, str], Awaitable[str]] | None = None
    #: the call-policy service (forwarding, barring, suspensions); None in tests without it
    policy: Any = None
    #: the tariffs, for the price look-up form (provisioning/api/price.py); None = the form says it is off
    rating: RatingService | None = None
    #: for imports and assigning unclaimed adapters (secrets at rest, digest realm); None = those pages are off
    secret_box: SecretBox | None = None
    realm: str = ""
    #: after an import: make the running switch see new lines at once
    after_change: Callable[[], Awaitable[None]] | None = None
    #: after a trunk or route changed on the admin page: the running switch routes by it now; None: no SIP side
    routing_reload: Callable[[], Awaitable[object]] | None = None
    #: after a token is revoked: forget cached verifications so it stops working now
    token_revoked: Callable[[], None] | None = None
    secure_cookies: bool = False
    login_throttle: AuthThrottle = field(default_factory=AuthThrottle)


UI_DEPS: web.AppKey[UiDeps] = web.AppKey("ui_deps", UiDeps)
