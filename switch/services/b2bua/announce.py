"""Which refusals the caller hears as an announcement, and what is played.

The A-leg asks :meth:`Announcer.begin` with the ``Fail`` it is about to send.
The announcer picks the prompt -- the ``Fail``'s own ``prompts`` (a star
code's result) or the cause's prompt -- in the caller's language, and starts
the player; the leg then sends ``183 Session Progress`` with the player's SDP
answer and, when the prompt has played (``on_end``), the final response with
its ``Reason`` header. ``None`` means "send the plain final response now":
announcements are off, the cause is not announced (busy and no-answer by
default: the adapter plays its own tone), the offer has neither PCMA nor
PCMU, or every RTP port allowed is in use.

Only calls that got as far as a ``Call`` reach this: refusals of
unauthenticated or unknown sources are answered before (``manager``), so a
stranger cannot make the switch send media.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from switch.media.catalogue import Selection
from switch.media.library import PromptLibrary

from .causes import Cause
from .events import Fail

__all__ = ["Announcer", "AnnounceSettings", "Player", "Playing", "NEVER_ANNOUNCED", "DEFAULT_PLAIN", "build_announcer"]

#: Nobody is listening, or the caller's adapter must see the bare status.
NEVER_ANNOUNCED = frozenset(
    {
        Cause.NORMAL, Cause.CANCELLED, Cause.SHUTDOWN, Cause.MAX_DURATION, Cause.ACK_TIMEOUT,
        Cause.CALLER_AUTH_FAILED, Cause.FORBIDDEN_SOURCE,
    }
)
#: Plain unless the operator says otherwise (``--plain-causes``): the adapter's own busy tone is clearer.
DEFAULT_PLAIN = frozenset({Cause.BUSY.value, Cause.NO_ANSWER.value})


class Playing(Protocol):
    """A prompt being played (``switch.media.udp.Playback``)."""

    answer: bytes

    def stop(self) -> None: ...

    def finish_now(self) -> None: ...


class Player(Protocol):
    """``switch.media.udp.AnnouncementPlayer``, or a fake in tests."""

    def start(
        self, offer: bytes, signalling_host: str, audio: Callable[[str], bytes], on_end: Callable[[], None]
    ) -> Playing | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class AnnounceSettings:
    enabled: bool = True
    plain: frozenset[str] = field(default=DEFAULT_PLAIN)
    """Cause values answered with the bare status even though they have a prompt."""


class Announcer:
    """Prompt selection per cause and language, and the player that plays it."""

    __slots__ = ("library", "player", "settings")

    def __init__(self, library: PromptLibrary, player: Player | None, settings: AnnounceSettings | None = None) -> None:
        self.library = library
        self.player = player
        self.settings = settings or AnnounceSettings()

    def selection(self, fail: Fail, language: str | None) -> Selection | None:
        """What this refusal would say (None: it has no prompt, or is never announced)."""
        if fail.prompts:
            return self.library.catalogue.select(fail.prompts, language)
        if fail.cause in NEVER_ANNOUNCED:
            return None
        return self.library.catalogue.select(fail.cause.value, language)

    def support_code(self, fail: Fail) -> str | None:
        """The code the prompt says (and the call record keeps), whether it is played or not."""
        selection = self.selection(fail, None)
        return selection.support_code or None if selection is not None else None

    def begin(
        self, *, offer: bytes, source_host: str, fail: Fail, language: str | None, on_end: Callable[[], None]
    ) -> Playing | None:
        """Start playing for ``fail``; None when the plain final response should go out now."""
        if self.player is None or not self.settings.enabled:
            return None
        if not fail.prompts and fail.cause.value in self.settings.plain:
            return None
        selection = self.selection(fail, language)
        if selection is None:
            return None
        library = self.library
        return self.player.start(offer, source_host, lambda encoding: library.audio(selection, encoding), on_end)

    def close(self) -> None:
        if self.player is not None:
            self.player.close()

    def snapshot(self) -> dict[str, object]:
        """For ``/health``: prompts playing now, ports, and the player's counters."""
        player = self.player
        if player is None:
            return {"enabled": False}
        stats = getattr(player, "stats", None)
        pool = getattr(player, "pool", None)
        return {
            "enabled": self.settings.enabled,
            "playing": getattr(player, "active", None),
            "ports": None if pool is None else {"in_use": pool.in_use, "limit": pool.limit},
            **(stats.snapshot() if stats is not None else {}),
        }


def build_announcer(settings: Any, sip_addresses: Mapping[str, tuple[str, int]]) -> Announcer:
    """The announcer ``softswitch run`` uses: shipped prompts, the operator's recordings, a UDP player.

    RTP binds to ``--rtp-address``, else the first SIP listening host; the SDP
    names the same address unless it is a wildcard, then our SIP (Via) address,
    read when an answer is made (the announcer is built before the SIP sockets open).
    """
    from pathlib import Path

    from switch.media.ports import PortPool
    from switch.media.udp import AnnouncementPlayer

    library = PromptLibrary(overrides=Path(settings.prompt_dir))
    announce = AnnounceSettings(enabled=bool(settings.announcements), plain=frozenset(settings.plain_causes))
    if not settings.announcements or settings.max_announcements <= 0:
        return Announcer(library, None, announce)
    host = settings.rtp_address or settings.sip_listen[0][0]
    advertise: str | Callable[[], str] = host
    if host in ("0.0.0.0", "::"):
        def via_host() -> str:
            return (sip_addresses.get("udp") or (host, 0))[0]

        advertise = via_host
    low, high = settings.rtp_ports
    player = AnnouncementPlayer(PortPool(low, high, settings.max_announcements), host, advertise)
    return Announcer(library, player, announce)
