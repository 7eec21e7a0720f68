"""Carrier trunks: the in-memory trunk and route table, source ACLs, liveness, credentials.

The call path needs three answers about trunks, each in O(1):

* *Is this INVITE from a carrier?* ``RoutingTable.trunk_for_source(ip)``
  matches the source address against every trunk's CIDR list (or its own
  address when none is configured). Results are cached per source address,
  because the same few carrier and adapter addresses send every INVITE.
* *Where does this number go?* ``RoutingTable.routes``: a ``PrefixTable``
  keyed by E.164 digits without '+', so ``+4781`` beats ``+47``, and ``+``
  is the default route.
* *Is this trunk up?* ``TrunkService.dead``: ids of trunks that stopped
  answering OPTIONS. Routing moves dead trunks to the end of the failover
  order instead of waiting for their INVITE to time out, which is what keeps
  post-dial delay short when a carrier is down.

The table is rebuilt from the database by ``reload`` (at start and after an
import) and swapped in one assignment, so a call never sees half a table.
Hostnames are resolved at load time: a DNS lookup per call would block or
add latency on the call path.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from switch.sip.digest import DigestClient
from switch.sip.transaction.events import Peer
from switch.sip.uri import format_host

from .numbering import PrefixTable
from .outbound import out_of_dialog_request, ping
from .periodic import Periodic
from .sip_port import SipPort

if TYPE_CHECKING:
    from switch.store.repo_trunks import RouteRecord, TrunkRecord

__all__ = ["TrunkInfo", "RouteEntry", "RoutingTable", "TrunkService", "IPNetwork"]

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_ACL_CACHE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class TrunkInfo:
    trunk_id: int
    name: str
    host: str
    port: int = 5060
    transport: str = "udp"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    allowed_sources: tuple[IPNetwork, ...] = ()
    """Where incoming calls from this carrier may come from."""
    emergency: bool = False
    enabled: bool = True
    address: str = ""
    """``host`` resolved to an IP address at load time ("" = use host as is)."""

    @property
    def peer(self) -> Peer:
        """Where requests to this trunk are sent."""
        return Peer(self.transport, self.address or self.host, self.port)

    def request_uri(self, user: str) -> str:
        """``sip:user@host:port`` (+ ``;transport=tcp`` when not UDP)."""
        uri = f"sip:{user}@{format_host(self.host)}:{self.port}"
        if self.transport != "udp":
            uri += f";transport={self.transport}"
        return uri

    def acl(self) -> tuple[IPNetwork, ...]:
        """The configured CIDRs, else the trunk's own address."""
        if self.allowed_sources:
            return self.allowed_sources
        for candidate in (self.address, self.host):
            try:
                return (ipaddress.ip_network(candidate),)
            except ValueError:
                continue
        return ()


@dataclass(frozen=True, slots=True)
class RouteEntry:
    route_id: int
    prefix: str
    """E.164 prefix with '+', as configured."""
    trunk_ids: tuple[int, ...]
    """Failover order."""


class RoutingTable:
    """An immutable-by-convention snapshot of trunks and routes (rebuilt, never edited)."""

    __slots__ = ("trunks", "routes", "by_name", "_acl", "_acl_cache")

    def __init__(self, trunks: Iterable[TrunkInfo] = (), routes: Iterable[RouteEntry] = ()) -> None:
        self.trunks: dict[int, TrunkInfo] = {t.trunk_id: t for t in trunks}
        self.by_name: dict[str, TrunkInfo] = {t.name: t for t in self.trunks.values()}
        self.routes: PrefixTable[RouteEntry] = PrefixTable()
        for r in routes:
            if not r.prefix.startswith("+"):
                raise ValueError(f"route prefix must start with '+': {r.prefix!r}")
            self.routes.add(r.prefix[1:], r)
        self._acl: list[tuple[IPNetwork, TrunkInfo]] = [(net, t) for t in self.trunks.values() for net in t.acl()]
        # Longest network first, so an operator can carve one carrier's host out of another's range.
        self._acl.sort(key=lambda item: -item[0].prefixlen)
        self._acl_cache: dict[str, TrunkInfo | None] = {}

    def trunk_for_source(self, host: str) -> TrunkInfo | None:
        """The trunk whose ACL contains ``host`` (disabled trunks included: the caller decides)."""
        try:
            return self._acl_cache[host]
        except KeyError:
            pass
        found: TrunkInfo | None = None
        if self._acl:
            try:
                addr = ipaddress.ip_address(host)
            except ValueError:
                addr = None
            if addr is not None:
                for net, trunk in self._acl:
                    if addr.version == net.version and addr in net:
                        found = trunk
                        break
        if len(self._acl_cache) >= _ACL_CACHE_MAX:
            self._acl_cache.clear()
        self._acl_cache[host] = found
        return found


def _networks(cidrs: Iterable[str], trunk: str) -> tuple[IPNetwork, ...]:
    out: list[IPNetwork] = []
    for c in cidrs:
        try:
            out.append(ipaddress.ip_network(c, strict=False))
        except ValueError:
            log.error("trunk %s: ignoring bad CIDR %r", trunk, c)
    return tuple(out)


async def resolve_host(host: str, port: int) -> str:
    """An IP address for ``host`` (IP literals are returned as they are)."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    return str(infos[0][4][0])


class TrunkService:
    """Owns the current RoutingTable, liveness marks and per-trunk digest clients."""

    def __init__(
        self,
        load: Callable[[], Awaitable[tuple[list[TrunkRecord], list[RouteRecord]]]],
        *,
        resolve: Callable[[str, int], Awaitable[str]] = resolve_host,
        dead_after: int = 2,
    ) -> None:
        self._load = load
        self._resolve = resolve
        self.dead_after = dead_after
        self.table = RoutingTable()
        self._built_from: tuple[list[TrunkInfo], list[RouteEntry]] | None = None
        #: Trunk ids that failed ``dead_after`` OPTIONS pings in a row (read by routing).
        self.dead: set[int] = set()
        self._misses: dict[int, int] = {}
        self._clients: dict[int, DigestClient] = {}
        #: after the first reload: is an enabled emergency trunk configured?
        self.has_emergency_trunk: bool | None = None

    # -- table ----------------------------------------------------------------
    async def reload(self) -> RoutingTable:
        trunk_rows, route_rows = await self._load()
        trunks: list[TrunkInfo] = []
        for r in trunk_rows:
            address = ""
            try:
                address = await self._resolve(r.host, r.port)
            except OSError as exc:
                log.error("trunk %s: cannot resolve %s (%s); calls to it will fail over", r.name, r.host, exc)
            trunks.append(
                TrunkInfo(
                    trunk_id=r.trunk_id,
                    name=r.name,
                    host=r.host,
                    port=r.port,
                    transport=r.transport,
                    username=r.username,
                    password=r.password,
                    allowed_sources=_networks(r.allowed_sources, r.name),
                    emergency=r.emergency,
                    enabled=r.enabled,
                    address=address,
                )
            )
        routes = [RouteEntry(r.route_id, r.prefix, r.trunk_ids) for r in route_rows if r.enabled]
        if (trunks, routes) == self._built_from:
            # The 30 s reload of an unchanged table keeps it (and its digest clients): a new one
            # every time lands in whatever allocator arenas a call burst left and keeps them.
            return self.table
        self.table = RoutingTable(trunks, routes)
        self._built_from = (trunks, routes)
        self._clients = {}
        known = set(self.table.trunks)
        self.dead &= known
        has_emergency = any(t.emergency and t.enabled for t in trunks)
        # Said when it becomes true (and at start-up), not on every 30 s reload: a
        # warning repeated forever is one operators learn to ignore.
        if not has_emergency and self.has_emergency_trunk is not False:
            log.warning("no enabled emergency trunk: 110/112/113 fall back to ordinary trunks")
        elif has_emergency and self.has_emergency_trunk is False:
            log.info("emergency trunk enabled again: 110/112/113 go to it first")
        self.has_emergency_trunk = has_emergency
        return self.table

    def set_table(self, table: RoutingTable) -> None:
        """Install a table directly (tests, or a future API that edits routes in memory)."""
        self.table = table
        self._built_from = None
        self._clients = {}

    def digest_client(self, trunk: TrunkInfo) -> DigestClient | None:
        """Client-side digest for 401/407 from this carrier (RFC 3261 §22.2), or None."""
        if not trunk.username or trunk.password is None:
            return None
        client = self._clients.get(trunk.trunk_id)
        if client is None:
            client = self._clients[trunk.trunk_id] = DigestClient(trunk.username, trunk.password)
        return client

    # -- liveness ---------------------------------------------------------------
    def mark(self, trunk_id: int, alive: bool) -> None:
        """Record one OPTIONS result; ``dead_after`` misses in a row mark the trunk dead."""
        if alive:
            self._misses.pop(trunk_id, None)
            if trunk_id in self.dead:
                self.dead.discard(trunk_id)
                log.info("trunk %s is answering again", self._name(trunk_id))
            return
        misses = self._misses.get(trunk_id, 0) + 1
        self._misses[trunk_id] = misses
        if misses >= self.dead_after and trunk_id not in self.dead:
            self.dead.add(trunk_id)
            log.warning("trunk %s does not answer OPTIONS: moved to the end of every failover list", self._name(trunk_id))

    def _name(self, trunk_id: int) -> str:
        t = self.table.trunks.get(trunk_id)
        return t.name if t else str(trunk_id)

    def liveness(self, port: SipPort, *, interval: float, timeout: float, from_host: str) -> Periodic:
        """The job pinging every enabled trunk with OPTIONS every ``interval`` seconds (not started)."""

        async def round_() -> None:
            if port.via_addresses:  # not before the sockets are open
                for trunk in list(self.table.trunks.values()):
                    if trunk.enabled:
                        self.ping(port, trunk, timeout, from_host)

        return Periodic("trunk liveness", round_, interval, immediate=True)

    def reloader(self, interval: float) -> Periodic:
        """The job re-reading trunks and routes every ``interval`` seconds (``softswitch import``
        runs in another process); a failed reload keeps routing with the table we have."""

        async def step() -> None:
            await self.reload()

        return Periodic("reloading trunks and routes", step, interval)

    def ping(self, port: SipPort, trunk: TrunkInfo, timeout: float, from_host: str) -> None:
        """One OPTIONS; any response (even 4xx/5xx) proves the carrier is there."""
        uri = f"sip:{format_host(trunk.host)}:{trunk.port}"
        if trunk.transport != "udp":
            uri += f";transport={trunk.transport}"
        req = out_of_dialog_request("OPTIONS", uri, from_host, port.user_agent)
        ping(port, req, trunk.peer, timeout, lambda rtt: self.mark(trunk.trunk_id, rtt is not None))
