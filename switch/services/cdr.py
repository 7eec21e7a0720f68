"""Call detail records: built in memory during the call, written once when it ends.

A CDR is an invoice line and the evidence support reads back to a customer,
so the rules are about not losing one:

* **One row per call, written at the end.** The call path itself never
  waits for the database; the finished record is handed to a group
  committer (``GroupCommitter``), which inserts whatever has accumulated in
  one transaction. At 400 calls/s that is a handful of commits per second.
* **A bad row does not poison the batch.** If the batch insert fails, every
  row is retried in its own transaction. A row that still fails because of
  its own content (a constraint) is logged in full and written to the spill
  file; the others are stored.
* **A database outage does not drop records.** Rows that failed for any
  other reason stay queued and are retried with the next batch (and by a
  periodic retry), up to ``max_pending``. On shutdown, whatever still cannot
  be written goes to the spill file as JSON lines, so an operator can load
  it later; without a spill file it is logged at ERROR as JSON.
* **Shutdown closes open calls.** The call manager ends every live call with
  cause ``shutdown`` (end time = shutdown) before the writer is closed.

Times are kept as epoch floats while the call runs (cheap), and become
timezone-aware datetimes only when the row is built.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from switch.store.errors import is_row_error
from switch.store.groupcommit import GroupCommitter
from switch.store.models import CallDirection

from .periodic import Periodic

__all__ = ["CdrDraft", "CdrWriter", "cdr_row"]

log = logging.getLogger(__name__)

class CdrDraft:
    """The record of one call, filled in as the call progresses.

    ``__slots__`` and plain attributes: one of these exists per live call and
    is touched on every state change.
    """

    __slots__ = (
        "call_id",
        "direction",
        "calling_line_id",
        "calling_number",
        "called_line_id",
        "dialled",
        "normalised",
        "number_class",
        "route_id",
        "route_prefix",
        "trunk_id",
        "trunk_name",
        "forwarded_from",
        "setup_at",
        "answer_at",
        "ring_at",
        "end_at",
        "answer_mono",
        "end_mono",
        "final_code",
        "cause",
        "support_code",
        "decision_trail",
        "forward_chain",
    )

    def __init__(
        self,
        *,
        call_id: str,
        direction: CallDirection,
        calling_number: str,
        dialled: str,
        setup_at: float,
        calling_line_id: int | None = None,
        called_line_id: int | None = None,
        normalised: str | None = None,
        number_class: str | None = None,
    ) -> None:
        self.call_id = call_id
        self.direction = direction
        self.calling_line_id = calling_line_id
        self.calling_number = calling_number
        self.called_line_id = called_line_id
        self.dialled = dialled
        self.normalised = normalised
        self.number_class = number_class
        self.route_id: int | None = None
        self.route_prefix: str | None = None
        self.trunk_id: int | None = None
        self.trunk_name: str | None = None
        self.forwarded_from: str | None = None
        self.setup_at = setup_at
        self.answer_at: float | None = None
        self.ring_at: float | None = None
        """First 180/183 (wall): the post-dial delay metric; not stored."""
        self.end_at: float | None = None
        self.answer_mono: float | None = None
        """Monotonic answer time: durations must not jump with the wall clock."""
        self.end_mono: float | None = None
        self.final_code: int | None = None
        self.cause: str | None = None
        self.support_code: str | None = None
        """What the announcement said at its end ("kode 2 1" → "21"), for support to match."""
        self.decision_trail: str | None = None
        """The policy engine's steps, JSON text (``call_records.decision_trail``)."""
        self.forward_chain: str | None = None
        """The forwards the call took, JSON text; None when it was not forwarded."""

    @property
    def duration_s(self) -> int:
        """Billable seconds, answer to end, rounded *up* (per-second billing starts a second)."""
        if self.answer_mono is None or self.end_mono is None:
            return 0
        return max(0, math.ceil(self.end_mono - self.answer_mono - 1e-6))

    def __repr__(self) -> str:
        return f"<CdrDraft {self.call_id} {self.calling_number}->{self.dialled} {self.cause} {self.final_code}>"


def _dt(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC)


def _clip(text: str | None, size: int) -> str | None:
    return None if text is None else text[:size]


def cdr_row(d: CdrDraft) -> dict[str, Any]:
    """The ``call_records`` row for a finished draft (strings clipped to the column sizes)."""
    return {
        "call_id": d.call_id[:255],
        "direction": d.direction,
        "calling_line_id": d.calling_line_id,
        "calling_number": d.calling_number[:32],
        "called_line_id": d.called_line_id,
        "dialled": d.dialled[:64],
        "normalised": _clip(d.normalised, 32),
        "number_class": _clip(d.number_class, 32),
        "route_id": d.route_id,
        "route_prefix": _clip(d.route_prefix, 16),
        "trunk_id": d.trunk_id,
        "trunk_name": _clip(d.trunk_name, 64),
        "forwarded_from": _clip(d.forwarded_from, 32),
        "setup_at": _dt(d.setup_at),
        "answer_at": _dt(d.answer_at),
        "end_at": _dt(d.end_at),
        "duration_s": d.duration_s,
        "final_code": d.final_code,
        "cause": _clip(d.cause, 64),
        "support_code": _clip(d.support_code, 8),
        "decision_trail": d.decision_trail,
        "forward_chain": d.forward_chain,
    }


def _json_row(row: dict[str, Any]) -> str:
    return json.dumps({k: (v.isoformat() if isinstance(v, datetime) else str(v) if hasattr(v, "value") else v) for k, v in row.items()})


class CdrWriter:
    """Group-committed, failure-isolated CDR inserts (see the module docstring).

    ``write`` is the raw-driver insert (``HotStore.insert_call_records``; an ORM insert
    per batch cost ~3 ms a call), optionally wrapped by rating's totals.
    """

    def __init__(
        self,
        write: Callable[[list[dict[str, Any]]], Awaitable[None]],
        *,
        window: float = 0.02,
        spill_path: str | Path | None = None,
        max_pending: int = 100_000,
        retry_interval: float = 5.0,
        rate: Callable[[list[dict[str, Any]]], Awaitable[None]] | None = None,
    ) -> None:
        self._write = write
        #: Prices each new batch before it is written (``switch.services.rating``): in the
        #: committer's task, after the calls have ended, never in the call path.
        self._rate = rate
        self._committer: GroupCommitter[dict[str, Any]] = GroupCommitter(self._write_batch, window=window)
        self._spill_path = Path(spill_path) if spill_path is not None else None
        self._max_pending = max_pending
        self._retry_interval = retry_interval
        #: rows that failed for a transient reason (database down), oldest first
        self._pending: list[dict[str, Any]] = []
        self._retry = Periodic("CDR retry", self._retry_pending, retry_interval)
        self.written = 0
        self.spilled = 0

    def start(self) -> None:
        self._committer.start()
        self._retry.start()

    def submit(self, draft: CdrDraft) -> None:
        """Queue a finished call's record. Never raises into the call path."""
        try:
            row = cdr_row(draft)
        except Exception:  # noqa: BLE001 - a broken draft must still leave a trace
            log.exception("cannot build CDR from %r", draft)
            return
        self._committer.submit(row, self._done)

    @staticmethod
    def _done(exc: BaseException | None) -> None:
        # _write_batch handles every failure itself; an exception here is a shutdown.
        if exc is not None:
            log.debug("CDR batch ended with %r", exc)

    def commit_stats(self) -> dict[str, float]:
        """The group committer's figures plus the rows waiting for the database (``/metrics``)."""
        return self._committer.stats() | {"pending": len(self._pending)}

    @property
    def pending(self) -> int:
        """Rows waiting for the database to come back."""
        return len(self._pending)

    async def _write_batch(self, rows: list[dict[str, Any]]) -> None:
        if self._rate is not None:
            try:
                await self._rate(rows)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - an unpriced record is better than a lost one
                log.exception("rating a batch of %d CDRs failed; written without prices", len(rows))
        if self._pending:
            rows = self._pending + rows
            self._pending = []
        try:
            await self._write(rows)
            self.written += len(rows)
            return
        except asyncio.CancelledError:
            self._pending = rows + self._pending
            raise
        except Exception as exc:  # noqa: BLE001 - fall back to one row at a time
            if len(rows) > 1:
                log.warning("CDR batch of %d failed (%s); retrying row by row", len(rows), exc)
            else:
                self._one_failed(rows[0], exc)
                return
        for i, row in enumerate(rows):
            try:
                await self._write([row])
                self.written += 1
            except asyncio.CancelledError:
                self._pending.extend(rows[i:])
                raise
            except Exception as exc:  # noqa: BLE001 - isolate this row
                if not self._one_failed(row, exc):
                    # The database itself is failing: keep the rest for later, unattempted.
                    for rest in rows[i + 1 :]:
                        self._keep(rest)
                    return

    def _one_failed(self, row: dict[str, Any], exc: Exception) -> bool:
        """Deal with one row that failed alone; False when the failure was not the row's fault."""
        if is_row_error(exc):
            log.error("CDR rejected by the database (%s): %s", exc.__class__.__name__, _json_row(row))
            self._spill([row])
            return True
        log.warning("CDR write failed (%s); kept for retry", exc.__class__.__name__)
        self._keep(row)
        return False

    def _keep(self, row: dict[str, Any]) -> None:
        if len(self._pending) >= self._max_pending:
            log.error("CDR retry queue full; spilling: %s", _json_row(row))
            self._spill([row])
            return
        self._pending.append(row)

    async def _retry_pending(self) -> None:
        if self._pending:
            rows, self._pending = self._pending, []
            await self._write_batch(rows)

    def _spill(self, rows: list[dict[str, Any]]) -> None:
        self.spilled += len(rows)
        if self._spill_path is None:
            for row in rows:
                log.error("CDR LOST TO DATABASE, recorded here: %s", _json_row(row))
            return
        try:
            with self._spill_path.open("a", encoding="utf-8") as f:
                for row in rows:
                    f.write(_json_row(row) + "\n")
        except OSError:
            log.exception("cannot write CDR spill file %s", self._spill_path)
            for row in rows:
                log.error("CDR LOST TO DATABASE, recorded here: %s", _json_row(row))

    async def close(self) -> None:
        """Write what is queued (one last try for rows waiting on the database), then stop."""
        await self._retry.stop()
        await self._committer.close()
        if self._pending:
            rows, self._pending = self._pending, []
            try:
                await self._write(rows)
                self.written += len(rows)
            except Exception:  # noqa: BLE001 - last resort: spill
                self._spill(rows)
