"""The adapter's lamps as the switch knows them: PWR, WAN, Tel1, Tel2.

Support's first question on "no dial tone" is what the lamps show. We cannot
see the real lamps, so we compute what they would show from evidence:

* **PWR** — the adapter is alive: it fetched its config or sent any SIP
  message recently.
* **WAN** — the adapter is reachable through its NAT: our OPTIONS pings to
  its registered contacts are answered. One lost ping must not flip the lamp;
  it takes ``loss_threshold`` consecutive losses.
* **Tel1 / Tel2** — that line is registered and reachable.

Each lamp has a state (ok / warning / off), a reason support can act on, and
when the state last changed. Every change is handed to ``persist`` as an event
so support sees the history; the current state is served from memory.

The database keeps the store's records (``switch.store.rows``): ``lamp_rows``
turns lamp changes into them, ``restore_lamps`` reads them back, and
``Reachability.row``/``Reachability.from_row`` convert a ping history -- the
one place each conversion happens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from switch.store.lamp_history import LampChangeRows
from switch.store.models import LampName
from switch.store.rows import Binding, LampEventRow, LampRow, Reachability

from .lines import LineDirectory, LineInfo
from .location import LocationService

log = logging.getLogger(__name__)

OK, WARNING, OFF = "ok", "warning", "off"
LAMPS = ("pwr", "wan", "tel1", "tel2")


@dataclass(frozen=True, slots=True)
class Lamp:
    state: str
    reason: str
    since: float

    def as_json(self) -> dict[str, str]:
        return {
            "state": self.state,
            "reason": self.reason,
            "since": datetime.fromtimestamp(self.since, tz=timezone.utc).isoformat(timespec="seconds"),
        }


#: A binding's identity as stored (``bindings`` is unique on line and contact URI).
ReachKey = tuple[int, str]

#: Weight of a new sample in the smoothed round-trip time (RFC 6298 §2.3 uses 1/8 too).
RTT_ALPHA = 0.125


def record_ping(r: Reachability, rtt: float | None, now: float, keep: int = 20) -> Reachability:
    """``r`` after one more ping: answered in ``rtt`` seconds, or lost (None); the last ``keep`` kept."""
    history = (*r.history, rtt)[-keep:]
    if rtt is None:
        return Reachability(
            r.line_id, r.contact, r.sent + 1, r.lost + 1, r.consecutive_lost + 1,
            now if r.consecutive_lost == 0 else r.first_lost_at, now, r.last_reply_at, r.last_rtt, r.avg_rtt, history,
        )
    avg = rtt if r.avg_rtt is None else r.avg_rtt + RTT_ALPHA * (rtt - r.avg_rtt)
    return Reachability(r.line_id, r.contact, r.sent + 1, r.lost, 0, 0.0, now, now, rtt, avg, history)



@dataclass(slots=True)
class LineEvidence:
    auth_failures: int = 0
    first_failure_at: float = 0.0
    last_failure_reason: str = ""
    last_expired_at: float = 0.0
    unregistered_at: float = 0.0
    ever_registered: bool = False


@dataclass(slots=True)
class AdapterEvidence:
    last_fetch_at: float = 0.0
    last_sip_at: float = 0.0
    lamps: dict[str, Lamp] = field(default_factory=dict)


def _hhmm(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%H:%M UTC")


def _ago(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s} s ago"
    if s < 7200:
        return f"{s // 60} min ago"
    if s < 172800:
        return f"{s // 3600} h ago"
    return f"{s // 86400} days ago"


LampChange = tuple[int, str, Lamp | None, Lamp]  # adapter id, lamp, old, new

#: our lamp names -> as stored
_STORED_LAMP = {"pwr": LampName.PWR.value, "wan": LampName.WAN.value, "tel1": LampName.TEL1.value, "tel2": LampName.TEL2.value}
_OUR_LAMP = {v: k for k, v in _STORED_LAMP.items()}


def lamp_rows(changes: list[LampChange], now: float) -> list[LampChangeRows]:
    """The store's records of lamp changes: each lamp's new state, and its event (at ``now``
    unless the state itself changed, whose event is dated by the new ``since``)."""
    out: list[LampChangeRows] = []
    for adapter_id, name, old, new in changes:
        lamp, reason = _STORED_LAMP[name], new.reason[:200]
        at = new.since if old is None or old.state != new.state else now
        out.append((
            LampRow(adapter_id=adapter_id, lamp=lamp, state=new.state, reason=reason, since=new.since),
            LampEventRow(adapter_id=adapter_id, lamp=lamp, old_state=old.state if old else None,
                         new_state=new.state, reason=reason, at=at),
        ))
    return out


class AdapterStatusService:
    def __init__(
        self,
        lines: LineDirectory,
        location: LocationService,
        *,
        alive_window: float = 3900.0,
        loss_threshold: int = 3,
        clock: Callable[[], float] = time.time,
        persist: Callable[[list[LampChange]], None] | None = None,
    ) -> None:
        self.lines = lines
        self.location = location
        self.alive_window = alive_window
        self.loss_threshold = loss_threshold
        self.clock = clock
        self.persist = persist
        self.adapters: dict[int, AdapterEvidence] = {}
        self.line_evidence: dict[int, LineEvidence] = {}
        #: qualify history per binding; dropped with the binding, or when its NAT address changes
        self.reach: dict[ReachKey, Reachability] = {}
        #: bindings whose history changed since ``take_dirty_reach`` last ran (to be written)
        self._dirty_reach: set[ReachKey] = set()
        #: (received host, port) → adapter id, to attribute SIP traffic and keep-alives
        self._addr_adapter: dict[tuple[str, int], int] = {}
        #: how many bindings use each received address: ``_addr_adapter`` forgets unused ones
        self._addr_refs: dict[tuple[str, int], int] = {}

    def restore(self, adapter_id: int, lamps: dict[str, Lamp], last_fetch_at: float = 0.0) -> None:
        """Seed from the database at start-up so ``since`` survives restarts."""
        ev = self.adapters.setdefault(adapter_id, AdapterEvidence())
        ev.lamps.update(lamps)
        ev.last_fetch_at = max(ev.last_fetch_at, last_fetch_at)

    def restore_lamps(self, rows: list[LampRow], last_fetch: dict[int, float]) -> None:
        """Seed every adapter's lamps and last config fetch from the database at start-up."""
        per: dict[int, dict[str, Lamp]] = {}
        for r in rows:
            name = _OUR_LAMP.get(r.lamp)
            if name is not None:
                per.setdefault(r.adapter_id, {})[name] = Lamp(r.state, r.reason, r.since)
        for adapter_id in set(per) | set(last_fetch):
            self.restore(adapter_id, per.get(adapter_id, {}), last_fetch.get(adapter_id, 0.0))

    def restore_reach(self, key: ReachKey, r: Reachability) -> None:
        """Seed one binding's qualify history from the database at start-up."""
        self.reach[key] = r

    def restore_qualify(self, rows: list[Reachability]) -> None:
        """Seed the qualify histories from their stored records at start-up."""
        for q in rows:
            self.reach[q.key] = q

    def take_dirty_reach(self) -> list[tuple[ReachKey, Reachability]]:
        """The histories changed since the last call (still current), for writing out."""
        dirty, self._dirty_reach = self._dirty_reach, set()
        return [(k, self.reach[k]) for k in dirty if k in self.reach]

    def take_dirty_qualify_rows(self) -> list[Reachability]:
        """``take_dirty_reach``'s records alone, ready for ``HotStore.write_qualify`` (frozen: no copy needed)."""
        return [r for _k, r in self.take_dirty_reach()]

    def start(self) -> None:
        for b in self.location.all_bindings():
            addr = (b.received_host, b.received_port)
            self._addr_refs[addr] = self._addr_refs.get(addr, 0) + 1
            line = self.lines.by_id.get(b.line_id)
            if line is not None and line.adapter_id is not None:
                self._addr_adapter[(b.received_host, b.received_port)] = line.adapter_id
                self.line_evidence.setdefault(b.line_id, LineEvidence()).ever_registered = True
                ev = self.adapters.setdefault(line.adapter_id, AdapterEvidence())
                ev.last_sip_at = max(ev.last_sip_at, b.last_seen)
        for adapter_id in list(self.lines.by_adapter):
            self.refresh(adapter_id)

    # -- evidence -------------------------------------------------------------
    def config_fetched(self, adapter_id: int) -> None:
        self.adapters.setdefault(adapter_id, AdapterEvidence()).last_fetch_at = self.clock()
        self.refresh(adapter_id)

    def sip_seen(self, transport: str, host: str, port: int) -> None:
        adapter_id = self._addr_adapter.get((host, port))
        if adapter_id is None:
            return
        ev = self.adapters.setdefault(adapter_id, AdapterEvidence())
        now = self.clock()
        stale = now - ev.last_sip_at > 1.0
        ev.last_sip_at = now
        if stale and ev.lamps.get("pwr", Lamp(OFF, "", 0)).state != OK:
            self.refresh(adapter_id)

    def line_seen(self, line: LineInfo) -> None:
        if line.adapter_id is None:
            return
        self.adapters.setdefault(line.adapter_id, AdapterEvidence()).last_sip_at = self.clock()

    def register_outcome(self, line: LineInfo | None, source: str, status: int) -> None:
        if line is None:
            return
        le = self.line_evidence.setdefault(line.line_id, LineEvidence())
        now = self.clock()
        self.line_seen(line)
        if status == 403:
            if le.auth_failures == 0:
                le.first_failure_at = now
            le.auth_failures += 1
            le.last_failure_reason = f"wrong password {le.auth_failures}× since {_hhmm(le.first_failure_at)}"
        elif status == 200:
            was_failing = le.auth_failures > 0
            le.auth_failures = 0
            le.ever_registered = True
            if not was_failing:
                return  # a binding change already refreshed the lamps; a refresh changes nothing
        if line.adapter_id is not None:
            self.refresh(line.adapter_id)

    def qualify_result(self, binding: Binding, rtt: float | None) -> None:
        key = (binding.line_id, binding.contact)
        current = self.location.bindings(binding.line_id)
        if not any(b.contact == binding.contact and b.received_port == binding.received_port
                   and b.received_host == binding.received_host for b in current):
            return  # the binding went away (or moved) while the ping was out: nothing to keep
        r = self.reach.get(key) or Reachability(*key)
        self._dirty_reach.add(key)
        before = r.consecutive_lost >= self.loss_threshold
        r = self.reach[key] = record_ping(r, rtt, self.clock())
        after = r.consecutive_lost >= self.loss_threshold
        line = self.lines.by_id.get(binding.line_id)
        if before != after and line is not None:
            if after:
                log.info("line %s unreachable: %d pings to %s:%s unanswered", line.number, r.consecutive_lost,
                         binding.received_host, binding.received_port)
            else:
                log.info("line %s reachable again at %s:%s", line.number, binding.received_host, binding.received_port)
        if line is not None and line.adapter_id is not None:
            if rtt is not None:
                self.adapters.setdefault(line.adapter_id, AdapterEvidence()).last_sip_at = self.clock()
            if before != after or rtt is not None:
                self.refresh(line.adapter_id)

    def bindings_changed(self, line_id: int, old: list[Binding], new: list[Binding]) -> None:
        self._forget_gone(line_id, old, new)
        line = self.lines.by_id.get(line_id)
        if line is None or line.adapter_id is None:
            return
        if old and _shape(old) == _shape(new) and min(b.expires_at for b in old) > self.clock():
            # A refresh from the same contacts and addresses: no lamp can change, and at
            # thousands of registrations/s recomputing every adapter's lamps showed up.
            return
        le = self.line_evidence.setdefault(line_id, LineEvidence())
        for b in new:
            self._addr_adapter[(b.received_host, b.received_port)] = line.adapter_id
        if old and not new:
            now = self.clock()
            if all(b.expires_at <= now + 1 for b in old):
                le.last_expired_at = max(b.expires_at for b in old)
            else:
                le.unregistered_at = now
        self.refresh(line.adapter_id)

    def _forget_gone(self, line_id: int, old: list[Binding], new: list[Binding]) -> None:
        """Drop the history of bindings that are gone or reached us from a new NAT address.

        Without this, ``reach`` and the address map grew by one entry per NAT port
        change for as long as the switch ran.
        """
        if len(old) == len(new) and all(
            o.contact == n.contact and o.received_port == n.received_port and o.received_host == n.received_host
            for o, n in zip(old, new)
        ):
            return  # the usual refresh (every REGISTER): same contacts from the same addresses
        addr_of = {b.contact: (b.received_host, b.received_port) for b in new}
        for b in old:
            addr = (b.received_host, b.received_port)
            now_at = addr_of.get(b.contact)
            if now_at == addr:
                continue
            key = (line_id, b.contact)
            if now_at is None:  # gone: its qualify_stats row goes with its bindings row
                self.reach.pop(key, None)
                self._dirty_reach.discard(key)
            elif key in self.reach:  # moved: its row stays, so overwrite the old path's history
                self.reach[key] = Reachability(*key)
                self._dirty_reach.add(key)
        if [(b.received_host, b.received_port) for b in old] == list(addr_of.values()):
            return  # the same addresses in the same order: counts unchanged
        for b in new:
            a = (b.received_host, b.received_port)
            self._addr_refs[a] = self._addr_refs.get(a, 0) + 1
        for b in old:
            a = (b.received_host, b.received_port)
            n = self._addr_refs.get(a, 0) - 1
            if n > 0:
                self._addr_refs[a] = n
            else:
                self._addr_refs.pop(a, None)
                self._addr_adapter.pop(a, None)

    # -- computation ----------------------------------------------------------
    def _line_lamp(self, adapter_id: int, port: int, now: float) -> tuple[str, str]:
        line = next((li for li in self.lines.adapter_lines(adapter_id) if li.port == port), None)
        if line is None:
            return OFF, "no line on this port"
        if not line.enabled:
            return OFF, "line disabled"
        le = self.line_evidence.get(line.line_id, LineEvidence())
        bindings = self.location.bindings(line.line_id)
        if bindings:
            lost = [self.reach[(b.line_id, b.contact)] for b in bindings if (b.line_id, b.contact) in self.reach]
            if lost and all(r.consecutive_lost >= self.loss_threshold for r in lost):
                r = lost[0]
                return WARNING, f"registered but not answering pings since {_hhmm(r.first_lost_at)}"
            if le.auth_failures:
                return WARNING, f"registered; {le.last_failure_reason}"
            b = bindings[0]
            return OK, f"registered from {b.received_host}:{b.received_port} ({b.transport})"
        if le.auth_failures:
            return OFF, le.last_failure_reason
        if le.unregistered_at and le.unregistered_at >= le.last_expired_at:
            return OFF, f"unregistered {_ago(now - le.unregistered_at)}"
        if le.last_expired_at:
            return OFF, f"registration expired {_ago(now - le.last_expired_at)}"
        ev = self.adapters.get(adapter_id)
        if ev is None or not (ev.last_fetch_at or ev.last_sip_at or le.ever_registered):
            return OFF, "never provisioned"
        return OFF, "not registered"

    def compute(self, adapter_id: int) -> dict[str, tuple[str, str]]:
        now = self.clock()
        ev = self.adapters.get(adapter_id) or AdapterEvidence()
        last = max(ev.last_fetch_at, ev.last_sip_at)
        if not last:
            pwr = (OFF, "never seen: no config fetch or SIP traffic")
        elif now - last <= self.alive_window:
            what = "config fetch" if ev.last_fetch_at >= ev.last_sip_at else "SIP traffic"
            pwr = (OK, f"last {what} {_ago(now - last)}")
        else:
            pwr = (WARNING, f"not seen since {_hhmm(last)}")
        line_ids = [li.line_id for li in self.lines.adapter_lines(adapter_id)]
        bindings = [b for lid in line_ids for b in self.location.bindings(lid)]
        if not bindings:
            wan = (OFF, "no registered line to reach")
        else:
            reach = [self.reach.get((b.line_id, b.contact)) for b in bindings]
            known = [r for r in reach if r is not None and r.sent]
            if not known:
                wan = (OK, "registered; not yet pinged")
            elif all(r.consecutive_lost >= self.loss_threshold for r in known):
                r = known[0]
                wan = (WARNING, f"no answer to {r.consecutive_lost} pings since {_hhmm(r.first_lost_at)}")
            else:
                answering = [r for r in known if r.consecutive_lost < self.loss_threshold]
                best = min((r.last_rtt for r in answering if r.last_rtt is not None), default=None)
                rtt = f", rtt {best * 1000:.0f} ms" if best is not None else ""
                missed = max(r.consecutive_lost for r in answering)
                if missed:
                    wan = (OK, f"{missed} ping(s) unanswered since {_hhmm(max(r.first_lost_at for r in answering))}{rtt}")
                else:
                    wan = (OK, f"answering pings{rtt}")
        return {
            "pwr": pwr,
            "wan": wan,
            "tel1": self._line_lamp(adapter_id, 1, now),
            "tel2": self._line_lamp(adapter_id, 2, now),
        }

    def refresh(self, adapter_id: int) -> dict[str, Lamp]:
        """Recompute; record changes of state or reason (``since`` moves on state change only)."""
        now = self.clock()
        ev = self.adapters.setdefault(adapter_id, AdapterEvidence())
        changes: list[LampChange] = []
        for name, (state, reason) in self.compute(adapter_id).items():
            old = ev.lamps.get(name)
            if old is not None and old.state == state and old.reason == reason:
                continue
            new = Lamp(state, reason, old.since if old is not None and old.state == state else now)
            ev.lamps[name] = new
            # A reason whose relative time only ticked ("5 s ago" -> "3 min ago") is shown
            # fresh but is not worth a history event.
            if old is not None and old.state == state and _same_kind(old.reason, reason):
                continue
            changes.append((adapter_id, name, old, new))
        if changes and self.persist is not None:
            self.persist(changes)
        return ev.lamps

    def refresh_all(self) -> None:
        ids = set(self.lines.by_adapter)
        ids.update(self.adapters)
        for adapter_id in ids:
            self.refresh(adapter_id)

    async def refresh_all_async(self, chunk: int = 200) -> None:
        """refresh_all, yielding to the loop between chunks so SIP never waits on it."""
        import asyncio

        ids = list(set(self.lines.by_adapter) | set(self.adapters))
        for i in range(0, len(ids), chunk):
            for adapter_id in ids[i : i + chunk]:
                self.refresh(adapter_id)
            await asyncio.sleep(0)

    def status(self, adapter_id: int) -> dict[str, Lamp]:
        return self.refresh(adapter_id)


def _same_kind(a: str, b: str) -> bool:
    """True when two reasons differ only in their relative-time tail."""
    for marker in (" ago", "last "):
        if marker in a and marker in b:
            return a.split(" ")[:2] == b.split(" ")[:2]
    return False


def _shape(bindings: list[Binding]) -> set[tuple[str, str, int, str]]:
    """What of a binding set the lamps depend on (not its expiry, which a refresh moves)."""
    return {(b.key, b.received_host, b.received_port, b.transport) for b in bindings}
