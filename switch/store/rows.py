"""The record types of the tables the switch writes while it runs: one per table.

Why one module: each of these tables is written by the raw-driver writer
(``hot_store``) and read back at start-up (or by the operator API) through the
store's readers, and both sides use the same record, so a column cannot be
written one way and read another. The services hold these same records in
memory: ``Binding`` in the location service, ``Reachability`` in the lamps
(frozen: a new ping result replaces the record, ``adapter_status.record_ping``,
so the writer's thread reads records nobody is changing).

Times are epoch seconds (floats, 0 = never) and round-trip times seconds, as the
services count them; the writer and the readers convert to and from the
columns' UTC timestamps and milliseconds.

| table            | record          | written by                   | read by                          |
|------------------|-----------------|------------------------------|----------------------------------|
| ``bindings``     | ``Binding``     | ``HotStore.replace_bindings`` | ``repo_bindings.load_bindings``  |
| ``qualify_stats``| ``Reachability``| ``HotStore.write_qualify``    | ``repo_bindings.load_qualify_stats`` |
| ``adapter_lamps``| ``LampRow``     | ``HotStore.write_lamps``      | ``lamp_history.load_lamps``      |
| ``lamp_events``  | ``LampEventRow``| ``HotStore.write_lamps``      | ``lamp_history.list_lamp_events``|

Call records are rows of ``call_records`` built in one place
(``switch.services.cdr.cdr_row``, a dict keyed by column name so that rating can
add its price columns and the spill file can hold them as JSON) and written by
``HotStore.insert_call_records`` only. Their readers are queries for a purpose
(the calls API, invoices, period totals, re-rating), each selecting what it needs
from the ``CallRecord`` table definition; none of them writes a call record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Binding", "LampEventRow", "LampRow", "LineChange", "Reachability"]


@dataclass(frozen=True, slots=True)
class Binding:
    """One registered contact of a line (a ``bindings`` row); ``(line_id, contact)`` identifies it."""

    line_id: int
    contact: str  # the Contact URI as registered (no header params)
    expires_at: float  # wall clock (epoch seconds)
    call_id: str
    cseq: int
    received_host: str
    received_port: int
    transport: str  # udp | tcp
    user_agent: str = ""
    instance: str = ""  # RFC 5626 +sip.instance
    reg_id: int = 0
    q: float = 1.0
    registered_at: float = 0.0
    #: last REGISTER (or keep-alive) from this contact: the PWR lamp's evidence after a restart
    last_seen: float = 0.0
    conn: int | None = None  # TCP connection id (not persisted)

    @property
    def key(self) -> str:
        """Identity of a binding within a line: the instance if given, else the contact."""
        return self.instance or self.contact

    def remaining(self, now: float) -> int:
        return max(0, int(self.expires_at - now + 0.5))


@dataclass(slots=True)
class LineChange:
    """The whole new binding set of one line (last write in a batch wins): the writer's unit."""

    line_id: int
    bindings: list[Binding] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Reachability:
    """One binding's ping history (a ``qualify_stats`` row): kept so a restart forgets none of it.

    Times in epoch seconds (0 = never), round-trip times in seconds (the table
    keeps milliseconds); ``history`` holds the last pings' round trips, oldest
    first, None for a lost one.
    """

    line_id: int
    contact: str
    sent: int = 0
    lost: int = 0
    consecutive_lost: int = 0
    first_lost_at: float = 0.0
    last_sent_at: float = 0.0
    last_reply_at: float = 0.0
    last_rtt: float | None = None
    avg_rtt: float | None = None
    history: tuple[float | None, ...] = ()

    @property
    def key(self) -> tuple[int, str]:
        """The binding it belongs to, as ``bindings`` is unique on (line, contact URI)."""
        return self.line_id, self.contact


@dataclass(frozen=True, slots=True)
class LampRow:
    """One lamp's current state (an ``adapter_lamps`` row); ``since`` moves only when the state does."""

    adapter_id: int
    lamp: str  # as stored: PWR / WAN / Tel1 / Tel2
    state: str  # ok / warning / off ...
    reason: str
    since: float


@dataclass(frozen=True, slots=True)
class LampEventRow:
    """One change of a lamp's state or reason (a ``lamp_events`` row)."""

    adapter_id: int
    lamp: str
    old_state: str | None  # None: the lamp had no state before
    new_state: str
    reason: str
    at: float
