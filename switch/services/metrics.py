"""Prometheus metrics: a few event counters and histograms, the rest read from live state at scrape time.

The hot paths pay for at most a pre-bound ``inc()`` or ``observe()`` (about a
microsecond): registration outcomes and latency, post-dial delay and call
setup time, qualify answers/losses, provisioning fetches. Everything the
switch already counts or holds (bindings, lamps, calls in progress, calls by
cause, SIP message counters, database writer queues and commit times, GC
pauses, CDR and rating counters) is read only when Prometheus scrapes, by
``_LiveCollector``, so it costs nothing between scrapes.

One registry per switch (not prometheus_client's global one), so tests and
two switches in one process do not share numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sized
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from switch import gcstats

__all__ = ["CONTENT_TYPE", "LiveSources", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SETUP = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0)


class _Bindings(Protocol):
    """``LocationService``: how many bindings, and its group committer's figures."""

    def count(self) -> int: ...

    def commit_stats(self) -> Mapping[str, float]: ...


class _LampState(Protocol):
    @property
    def state(self) -> str: ...


class _Adapter(Protocol):
    @property
    def lamps(self) -> Mapping[str, _LampState]: ...


class _Lamps(Protocol):
    """``AdapterStatusService``: every adapter's lamps."""

    @property
    def adapters(self) -> Mapping[int, _Adapter]: ...


class _SipStats(Protocol):
    @property
    def received(self) -> int: ...

    @property
    def sent(self) -> int: ...

    @property
    def rate_limited(self) -> int: ...


class _Sip(Protocol):
    """The SIP endpoint's message counters and live transactions."""

    @property
    def stats(self) -> _SipStats: ...

    @property
    def live_transactions(self) -> int: ...


class _Cdr(Protocol):
    @property
    def written(self) -> int: ...

    @property
    def spilled(self) -> int: ...

    def commit_stats(self) -> Mapping[str, float]: ...


class _CallStats(Protocol):
    @property
    def calls(self) -> int: ...

    @property
    def answered(self) -> int: ...

    @property
    def by_cause(self) -> Mapping[str, int]: ...


class _Calls(Protocol):
    """``CallManager``: calls in progress, its counters, its CDR writer."""

    @property
    def calls(self) -> Sized: ...

    @property
    def stats(self) -> _CallStats: ...

    @property
    def cdr(self) -> _Cdr | None: ...


class _Rating(Protocol):
    @property
    def rated(self) -> int: ...

    @property
    def unpriced(self) -> int: ...


@dataclass(frozen=True, slots=True)
class LiveSources:
    """What ``/metrics`` reads of the running switch at each scrape, and nothing more."""

    bindings: _Bindings
    lamps: _Lamps
    sip: _Sip
    calls: _Calls | None = None
    rating: _Rating | None = None


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.register_outcomes = Counter(
            "softswitch_register_outcomes", "REGISTER requests answered after authentication, by status",
            ["status"], registry=r,
        )
        self._reg_ok = self.register_outcomes.labels("200")
        self._reg_forbidden = self.register_outcomes.labels("403")
        self.register_latency = Histogram(
            "softswitch_register_latency_seconds",
            "Authenticated REGISTER to its 200: binding written (group commit) and answered", buckets=_FAST, registry=r,
        )
        self.post_dial_delay = Histogram(
            "softswitch_post_dial_delay_seconds", "INVITE to the first ringing or early media (180/183)",
            buckets=_FAST + (5.0, 10.0), registry=r,
        )
        self.call_setup = Histogram(
            "softswitch_call_setup_seconds", "INVITE to answer (200), answered calls", buckets=_SETUP, registry=r,
        )
        self.qualify = Counter("softswitch_qualify_pings", "OPTIONS pings to registered contacts, by result",
                               ["result"], registry=r)
        self._q_answered = self.qualify.labels("answered")
        self._q_lost = self.qualify.labels("lost")
        self.provisioning_fetches = Counter(
            "softswitch_provisioning_fetches", "Adapter configuration files served", registry=r,
        )
        self._live: _LiveCollector | None = None

    # -- hooks (called where the events already happen) ------------------------------------
    def register_outcome(self, _line: object, _source: str, status: int) -> None:
        if status == 200:
            self._reg_ok.inc()
        elif status == 403:
            self._reg_forbidden.inc()
        else:
            self.register_outcomes.labels(str(status)).inc()

    def call_ended(self, call: Any) -> None:
        rec = call.record
        if rec.ring_at is not None:
            self.post_dial_delay.observe(max(0.0, rec.ring_at - rec.setup_at))
        if rec.answer_at is not None:
            self.call_setup.observe(max(0.0, rec.answer_at - rec.setup_at))

    def wrap_qualify(self, on_result: Callable[[Any, float | None], None]) -> Callable[[Any, float | None], None]:
        answered, lost = self._q_answered, self._q_lost

        def counted(binding: Any, rtt: float | None) -> None:
            (lost if rtt is None else answered).inc()
            on_result(binding, rtt)

        return counted

    def fetched(self) -> None:
        self.provisioning_fetches.inc()

    # -- live state --------------------------------------------------------------------------
    def watch(self, sources: LiveSources) -> None:
        """Read the switch's own counters and state at each scrape.

        Not a constructor argument: the parts it reads are built with this object's
        hooks (the registrar's outcomes, the qualifier's results, the calls' end)."""
        if self._live is None:
            self._live = _LiveCollector(sources)
            self.registry.register(self._live)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LiveCollector(Collector):
    def __init__(self, sources: LiveSources) -> None:
        self.sources = sources

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        s = self.sources
        yield _gauge("softswitch_bindings", "Registered contacts (bindings)", s.bindings.count())
        lamps = GaugeMetricFamily("softswitch_adapter_lamps", "Adapters per lamp and state", labels=["lamp", "state"])
        counts: dict[tuple[str, str], int] = {}
        for ev in list(s.lamps.adapters.values()):
            for name, lamp in ev.lamps.items():
                key = (str(name), str(lamp.state))
                counts[key] = counts.get(key, 0) + 1
        for (name, state), n in sorted(counts.items()):
            lamps.add_metric([name, state], n)
        yield lamps

        ep = s.sip
        yield _counter("softswitch_sip_received", "SIP messages received", ep.stats.received)
        yield _counter("softswitch_sip_sent", "SIP messages sent", ep.stats.sent)
        yield _counter("softswitch_sip_rate_limited", "SIP messages dropped by the per-source flood limit",
                       ep.stats.rate_limited)
        yield _gauge("softswitch_sip_transactions", "Live SIP transactions", ep.live_transactions)

        writers = GaugeMetricFamily("softswitch_db_writer_queue", "Items waiting for the database writer",
                                    labels=["writer"])
        commits = CounterMetricFamily("softswitch_db_commits", "Group commits", labels=["writer"])
        commit_s = CounterMetricFamily("softswitch_db_commit_seconds", "Time spent in group commits",
                                       labels=["writer"])
        commit_max = GaugeMetricFamily("softswitch_db_commit_max_seconds", "Longest group commit since start",
                                       labels=["writer"])
        stats = [("bindings", s.bindings.commit_stats())]
        calls = s.calls
        if calls is not None and calls.cdr is not None:
            stats.append(("cdr", calls.cdr.commit_stats()))
        for name, st in stats:
            writers.add_metric([name], st["queued"] + st.get("pending", 0))
            commits.add_metric([name], st["batches"])
            commit_s.add_metric([name], st["mean_write_ms"] * st["batches"] / 1000.0)
            commit_max.add_metric([name], st["max_write_ms"] / 1000.0)
        yield from (writers, commits, commit_s, commit_max)

        if calls is not None:
            yield _gauge("softswitch_calls_in_progress", "Calls not yet ended", len(calls.calls))
            yield _counter("softswitch_call_attempts", "INVITEs that started a call or were refused",
                           calls.stats.calls)
            yield _counter("softswitch_calls_answered", "Calls answered", calls.stats.answered)
            by_cause = CounterMetricFamily("softswitch_calls_ended", "Ended calls by cause", labels=["cause"])
            for cause, n in sorted(calls.stats.by_cause.items()):
                by_cause.add_metric([cause], n)
            yield by_cause
            if calls.cdr is not None:
                yield _counter("softswitch_cdr_written", "Call records written", calls.cdr.written)
                yield _counter("softswitch_cdr_spilled", "Call records the database refused (spill file)",
                               calls.cdr.spilled)

        rating = s.rating
        if rating is not None:
            yield _counter("softswitch_rated_calls", "Calls priced by the tariff", rating.rated)
            yield _counter("softswitch_unpriced_calls", "Answered calls no tariff zone priced", rating.unpriced)

        gc_n = CounterMetricFamily("softswitch_gc_collections", "Garbage collections", labels=["generation"])
        gc_s = CounterMetricFamily("softswitch_gc_pause_seconds", "Time the collector stopped everything",
                                   labels=["generation"])
        gc_max = GaugeMetricFamily("softswitch_gc_pause_max_seconds", "Longest collector pause", labels=["generation"])
        for i, g in enumerate(gcstats.STATS.gens):
            gc_n.add_metric([str(i)], g.collections)
            gc_s.add_metric([str(i)], g.total_s)
            gc_max.add_metric([str(i)], g.max_s)
        yield from (gc_n, gc_s, gc_max)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)
