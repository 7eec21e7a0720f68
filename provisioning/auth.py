"""Bearer-token authentication and roles for the operator and customer APIs.

Tokens are stored as SHA-256 hashes (``softswitch token create`` prints the
secret once). Verified tokens are cached briefly so an API burst does not turn
into a database burst; failures are throttled per source address.

Roles (every route declares the ones it allows with ``require``; a test walks
the router and checks the declarations against this rule):

* ``admin``: everything, including operator users, API tokens, trunks and routes;
* ``support``: customers, adapters, lines, policy, resync, suspensions, imports
  (without trunks or routes); no trunks/routes, users or tokens;
* ``readonly``: what support may read (GET only);
* ``customer``: bound to one customer: its own lines' forwarding and barring,
  its call list and its invoice; another customer's objects answer 403/404.

A token linked to an operator user acts with the user's role (and stops
working when the user is disabled); a token of its own carries its role; a
token made before roles existed (``operator``) acts as ``admin``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from switch.store import repo_tokens
from switch.transport.ratelimit import FailureThrottle

from .errors import problem_details
from .keys import DEPS, TOKEN_CACHE

CACHE_SECONDS = 30.0
AUTH_THROTTLE: web.AppKey[FailureThrottle[str]] = web.AppKey("auth_throttle")


ADMIN = "admin"
SUPPORT = "support"
READONLY = "readonly"
CUSTOMER = "customer"
ROLES = frozenset({ADMIN, SUPPORT, READONLY, CUSTOMER})
#: Shorthands for route declarations: who may read staff data, who may change it.
STAFF_READ = (ADMIN, SUPPORT, READONLY)
STAFF_WRITE = (ADMIN, SUPPORT)


@dataclass(frozen=True, slots=True)
class Principal:
    role: str  # admin | support | readonly | customer
    customer: str | None
    token_id: int | None = None
    #: the operator user the token belongs to, if any (for the audit trail)
    username: str | None = None

    @property
    def actor(self) -> str:
        """Who did it, for audit events: ``operator:<user>``, ``customer:<id>`` or ``token:<id>``."""
        if self.role == CUSTOMER:
            return f"customer:{self.customer}"
        if self.username is not None:
            return f"operator:{self.username}"
        return f"token:{self.token_id}"


#: the authenticated caller, stored on the request by ``require`` (a typed key: aiohttp warns on str keys)
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal", Principal)


async def _verify(request: web.Request, token: str) -> Principal | None:
    cache = request.app[TOKEN_CACHE]
    now = time.monotonic()
    hit = cache.get(token)
    if hit is not None and hit[1] > now:
        return hit[0]
    deps = request.app[DEPS]
    found = await repo_tokens.verify_token(deps.session_factory, token)
    principal = None
    if found is not None:
        principal = Principal(
            role=found.effective_role,
            customer=found.customer_ref,
            token_id=found.token_id,
            username=found.username,
        )
        if len(cache) > 10000:
            cache.clear()
        cache[token] = (principal, now + CACHE_SECONDS)
    return principal


def _too_many(throttle: FailureThrottle[str], source: str, now: float) -> web.Response:
    until = throttle.blocked_until(source, now)
    resp = problem_details(429, "too many failed authentication attempts from this address; try again later")
    resp.headers["Retry-After"] = str(max(1, int((until or now + 60) - now + 0.999)))
    return resp


def require(*roles: str) -> Callable[[Callable[[web.Request], Awaitable[web.StreamResponse]]], Any]:
    """Decorator: the handler needs a bearer token with one of ``roles`` (kept on it as ``.roles``)."""
    unknown = set(roles) - ROLES
    if not roles or unknown:
        # "operator" was the one staff role before roles existed: a route must now say which.
        raise ValueError(f"require(): unknown role(s) {sorted(unknown)}; use {sorted(ROLES)}")
    allowed = frozenset(roles)

    def wrap(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
        async def inner(request: web.Request) -> web.StreamResponse:
            throttle = request.app[AUTH_THROTTLE]
            source = request.remote or "?"
            now = time.time()
            blocked = throttle.is_blocked(source, now)
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                if blocked:
                    return _too_many(throttle, source, now)
                resp = problem_details(401, "missing bearer token: send 'Authorization: Bearer <token>'")
                resp.headers["WWW-Authenticate"] = 'Bearer realm="softswitch"'
                return resp
            # A blocked address still gets in with a valid token: behind one NAT a whole
            # support desk shares it, and someone else's typos must not lock them out.
            # Guessing stays hopeless (256-bit tokens); the block only stops the answers.
            principal = await _verify(request, token.strip())
            if principal is None:
                if blocked:
                    return _too_many(throttle, source, now)
                throttle.record_failure(source, now)
                resp = problem_details(401, "invalid or revoked token")
                resp.headers["WWW-Authenticate"] = 'Bearer realm="softswitch", error="invalid_token"'
                return resp
            if principal.role not in allowed:
                return problem_details(403, f"this needs a token with role {' or '.join(roles)}; "
                                            f"yours is {principal.role}")
            request[PRINCIPAL] = principal
            return await handler(request)

        inner.__name__ = handler.__name__
        inner.__doc__ = handler.__doc__
        inner.roles = allowed  # type: ignore[attr-defined]
        return inner

    return wrap
