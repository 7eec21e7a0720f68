"""Bearer-token authentication for the operator and customer APIs.

Tokens are stored as SHA-256 hashes (``softswitch token create`` prints the
secret once). Verified tokens are cached briefly so an API burst does not turn
into a database burst; failures are throttled per source address.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from switch.store import repo_tokens
from switch.transport.ratelimit import FailureThrottle

from .errors import problem
from .keys import DEPS, TOKEN_CACHE

CACHE_SECONDS = 30.0
AUTH_THROTTLE: web.AppKey[FailureThrottle[str]] = web.AppKey("auth_throttle")


@dataclass(frozen=True, slots=True)
class Principal:
    role: str  # operator | customer
    customer: str | None
    token_id: int | None = None


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
            role=str(getattr(found.role, "value", found.role)),
            customer=found.customer_ref,
            token_id=found.token_id,
        )
        if len(cache) > 10000:
            cache.clear()
        cache[token] = (principal, now + CACHE_SECONDS)
    return principal


def _too_many(throttle: FailureThrottle[str], source: str, now: float) -> web.Response:
    until = throttle.blocked_until(source, now)
    resp = problem(429, "too many failed authentication attempts from this address; try again later")
    resp.headers["Retry-After"] = str(max(1, int((until or now + 60) - now + 0.999)))
    return resp


def require(*roles: str) -> Callable[[Callable[[web.Request], Awaitable[web.StreamResponse]]], Any]:
    """Decorator: the handler needs a bearer token with one of ``roles``."""

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
                resp = problem(401, "missing bearer token: send 'Authorization: Bearer <token>'")
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
                resp = problem(401, "invalid or revoked token")
                resp.headers["WWW-Authenticate"] = 'Bearer realm="softswitch", error="invalid_token"'
                return resp
            if principal.role not in roles:
                return problem(403, f"this needs a token with role {' or '.join(roles)}")
            request[PRINCIPAL] = principal
            return await handler(request)

        inner.__name__ = handler.__name__
        inner.__doc__ = handler.__doc__
        return inner

    return wrap
