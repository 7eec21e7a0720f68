"""SIP transaction timers (RFC 3261 §17, Table 4; RFC 6026 §8.4/§8.7 for L and M).

Every timer is derived from three base values, so an operator who tunes T1
for a slow link changes the whole schedule consistently:

=====  ==============================  ==================  ===========
timer  meaning                         unreliable (UDP)    reliable
=====  ==============================  ==================  ===========
A      INVITE request retransmit       T1, doubling        not started
B      INVITE transaction timeout      64*T1               64*T1
C      proxy INVITE timeout            > 3 min             > 3 min
D      wait for response retransmits   max(32 s, 64*T1)    0
E      non-INVITE request retransmit   T1, doubling to T2  not started
F      non-INVITE transaction timeout  64*T1               64*T1
G      INVITE response retransmit      T1, doubling to T2  not started
H      wait for ACK receipt            64*T1               64*T1
I      wait for ACK retransmits        T4                  0
J      wait for request retransmits    64*T1               0
K      wait for response retransmits   T4                  0
L      IST Accepted (RFC 6026)         64*T1               64*T1
M      ICT Accepted (RFC 6026)         64*T1               64*T1
=====  ==============================  ==================  ===========

Timer D is "at least 32 seconds" in §17.1.1.2; we take the larger of 32 s and
64*T1 so that a raised T1 still covers every final-response retransmission
the server can make (its Timer H is 64*T1).

A zero duration means "fires at once" (the transaction moves straight on);
``None`` means the timer is not started at all on that kind of transport.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TimerConfig", "TransportTimers", "RELIABLE_TRANSPORTS", "is_reliable"]

#: Transports with their own retransmission: SIP skips A/E/G and zeroes D/I/J/K (§17).
RELIABLE_TRANSPORTS = frozenset({"tcp", "tls", "sctp", "ws", "wss"})


def is_reliable(transport: str) -> bool:
    return transport.lower() in RELIABLE_TRANSPORTS


@dataclass(frozen=True, slots=True)
class TransportTimers:
    """The concrete timer durations for one kind of transport (seconds).

    Pre-computed once per layer so a transaction reads a slot instead of
    recomputing ``64 * t1`` on every transition.
    """

    t1: float
    t2: float
    a: float | None
    b: float
    d: float
    e: float | None
    f: float
    g: float | None
    h: float
    i: float
    j: float
    k: float
    l: float  # noqa: E741 - the RFC's name
    m: float


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """T1 (RTT estimate), T2 (max non-INVITE retransmit interval), T4 (max network lifetime)."""

    t1: float = 0.5
    """RTT estimate; RFC 3261 recommends 500 ms (§17.1.1.1)."""
    t2: float = 4.0
    """Cap on the retransmit interval for non-INVITE requests and INVITE responses."""
    t4: float = 5.0
    """Maximum time a message stays in the network."""

    def __post_init__(self) -> None:
        if not (self.t1 > 0 and self.t2 >= self.t1 and self.t4 >= 0):
            raise ValueError(f"bad SIP timer values: T1={self.t1} T2={self.t2} T4={self.t4}")

    # Unreliable-transport values, named as in RFC 3261 Table 4.
    @property
    def A(self) -> float:  # noqa: N802 - RFC names
        return self.t1

    @property
    def B(self) -> float:  # noqa: N802
        return 64 * self.t1

    @property
    def C(self) -> float:  # noqa: N802
        return 180.0

    @property
    def D(self) -> float:  # noqa: N802
        return max(32.0, 64 * self.t1)

    @property
    def E(self) -> float:  # noqa: N802
        return self.t1

    @property
    def F(self) -> float:  # noqa: N802
        return 64 * self.t1

    @property
    def G(self) -> float:  # noqa: N802
        return self.t1

    @property
    def H(self) -> float:  # noqa: N802
        return 64 * self.t1

    @property
    def I(self) -> float:  # noqa: N802, E743
        return self.t4

    @property
    def J(self) -> float:  # noqa: N802
        return 64 * self.t1

    @property
    def K(self) -> float:  # noqa: N802
        return self.t4

    @property
    def L(self) -> float:  # noqa: N802
        return 64 * self.t1

    @property
    def M(self) -> float:  # noqa: N802
        return 64 * self.t1

    def for_transport(self, reliable: bool) -> TransportTimers:
        """The durations a transaction uses on a reliable or an unreliable transport."""
        if reliable:
            return TransportTimers(
                t1=self.t1, t2=self.t2, a=None, b=self.B, d=0.0, e=None, f=self.F, g=None,
                h=self.H, i=0.0, j=0.0, k=0.0, l=self.L, m=self.M,
            )
        return TransportTimers(
            t1=self.t1, t2=self.t2, a=self.A, b=self.B, d=self.D, e=self.E, f=self.F, g=self.G,
            h=self.H, i=self.I, j=self.J, k=self.K, l=self.L, m=self.M,
        )
