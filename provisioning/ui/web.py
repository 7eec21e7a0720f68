"""What every page needs: templates, the login session, CSRF, language.

Sessions are server-side (``switch.store.repo_users``): the cookie holds a
random secret and nothing else; it is HttpOnly, SameSite=Strict and Secure
when the site runs under TLS. Every form post carries the session's CSRF token
and is refused (403) without it; the login form, which has no session yet,
uses a double-submit token (a cookie and a hidden field that must match).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

import jinja2
from aiohttp import web

from switch.store import repo_users
from switch.store.repo_users import SessionInfo

from .deps import UI_DEPS, UiDeps
from .i18n import pick_language, translate, translate_cause, translate_trail_step

__all__ = [
    "LOGIN_CSRF_COOKIE",
    "Page",
    "SESSION_COOKIES",
    "check_csrf",
    "current_session",
    "login_csrf_token",
    "render",
    "require_customer",
    "require_operator",
    "set_session_cookie",
]

TEMPLATES: Final = Path(__file__).with_name("templates")
#: One cookie per audience, so an operator logged into Min side on the same browser stays both.
SESSION_COOKIES: Final = {"operator": "ss_ui", "customer": "ss_minside"}
LOGIN_CSRF_COOKIE: Final = "ss_login"
LANG_COOKIE: Final = "ss_lang"
SESSION_KEY: web.RequestKey[SessionInfo] = web.RequestKey("ui_session", SessionInfo)

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)



def _when(t: datetime | float | None) -> str:
    """UTC, to the second: support staff compare it with what the customer says and with logs."""
    if t is None:
        return ""
    if isinstance(t, (int, float)):
        t = datetime.fromtimestamp(t, tz=timezone.utc)
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _nok(ore: int) -> str:
    """Integer øre as kroner with a decimal comma, as on a Norwegian invoice."""
    return f"{ore // 100},{ore % 100:02d} kr"


_env.filters["when"] = _when
_env.filters["nok"] = _nok

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Page:
    """Who is looking and in which language: passed to every template as ``page``."""

    lang: str
    session: SessionInfo | None
    path: str
    audience: str  # operator | customer

    @property
    def csrf(self) -> str:
        return self.session.csrf_token if self.session is not None else ""

    def t(self, key: str, **values: object) -> str:
        return translate(self.lang, key, **values)

    def cause(self, code: str | None) -> str:
        """A stored call-end cause in words in this page's language (the code stays in the markup)."""
        return translate_cause(self.lang, code)

    def trail(self, step: str) -> str:
        """A stored decision-trail step (the engine's English) in this page's language."""
        return translate_trail_step(self.lang, step)


def language(request: web.Request, default: str = "nb") -> str:
    return pick_language(request.cookies.get(LANG_COOKIE), request.headers.get("Accept-Language"), default)


def render(
    request: web.Request,
    template: str,
    *,
    audience: str = "operator",
    status: int = 200,
    **context: Any,
) -> web.Response:
    session = request.get(SESSION_KEY)
    lang = language(request)
    page = Page(lang=lang, session=session, path=request.path, audience=audience)
    html = _env.get_template(template).render(page=page, t=page.t, **context)
    resp = web.Response(text=html, content_type="text/html", status=status)
    _security_headers(resp)
    return resp


def _security_headers(resp: web.StreamResponse) -> None:
    resp.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'"
    )
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["Cache-Control"] = "no-store"


def _secure(request: web.Request) -> bool:
    return request.secure or request.app[UI_DEPS].secure_cookies


def set_session_cookie(request: web.Request, resp: web.StreamResponse, audience: str, secret: str) -> None:
    resp.set_cookie(
        SESSION_COOKIES[audience],
        secret,
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
        path="/ui/" if audience == "operator" else "/min-side/",
    )


def clear_session_cookie(request: web.Request, resp: web.StreamResponse, audience: str) -> None:
    resp.del_cookie(SESSION_COOKIES[audience], path="/ui/" if audience == "operator" else "/min-side/")


def login_csrf_token(request: web.Request) -> str:
    """The double-submit token for a login form: the one in the browser's cookie, else a new one."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not token or len(token) > 64:
        token = secrets.token_urlsafe(24)
    return token


def set_login_csrf_cookie(request: web.Request, resp: web.StreamResponse, token: str) -> None:
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", secure=_secure(request), max_age=3600)


def _same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


async def check_csrf(request: web.Request, form: Any) -> bool:
    """A form post is ours: its token matches the session's (or, before login, the cookie's)."""
    sent = str(form.get("csrf", ""))
    session = request.get(SESSION_KEY)
    if session is not None:
        return _same(sent, session.csrf_token)
    return _same(sent, request.cookies.get(LOGIN_CSRF_COOKIE, ""))


async def current_session(request: web.Request, audience: str) -> SessionInfo | None:
    secret = request.cookies.get(SESSION_COOKIES[audience], "")
    if not secret:
        return None
    deps: UiDeps = request.app[UI_DEPS]
    info = await repo_users.get_session(deps.session_factory, secret)
    if info is None or info.kind != audience:
        return None
    return info


def _login_redirect(request: web.Request, audience: str) -> web.HTTPFound:
    base = "/ui/login" if audience == "operator" else "/min-side/login"
    return web.HTTPFound(f"{base}?next={_safe_next(request.path_qs, audience)}")


def _safe_next(target: str, audience: str) -> str:
    """Only redirect back into our own pages (no open redirect)."""
    prefix = "/ui/" if audience == "operator" else "/min-side/"
    if target.startswith(prefix) and not target.startswith("//") and "\\" not in target:
        return target
    return prefix


def require_operator(*roles: str) -> Callable[[Handler], Handler]:
    """A page for logged-in operator users with one of ``roles`` (all roles when none given)."""

    def wrap(handler: Handler) -> Handler:
        async def inner(request: web.Request) -> web.StreamResponse:
            session = await current_session(request, "operator")
            if session is None or session.user is None:
                raise _login_redirect(request, "operator")
            request[SESSION_KEY] = session
            if roles and session.user.role.value not in roles:
                return render(request, "error.html", status=403, message=translate(language(request), "forbidden"))
            if request.method == "POST":
                form = await request.post()
                if not await check_csrf(request, form):
                    return render(request, "error.html", status=403, message=translate(language(request), "csrf_failed"))
            return await handler(request)

        inner.__name__ = handler.__name__
        inner.__doc__ = handler.__doc__
        return inner

    return wrap


def require_customer(handler: Handler) -> Handler:
    """A Min side page: a logged-in customer, and CSRF on posts."""

    async def inner(request: web.Request) -> web.StreamResponse:
        session = await current_session(request, "customer")
        if session is None or session.customer is None:
            raise _login_redirect(request, "customer")
        request[SESSION_KEY] = session
        if request.method == "POST":
            form = await request.post()
            if not await check_csrf(request, form):
                return render(
                    request, "error.html", audience="customer", status=403,
                    message=translate(language(request), "csrf_failed"),
                )
        return await handler(request)

    inner.__name__ = handler.__name__
    inner.__doc__ = handler.__doc__
    return inner


def now() -> float:
    return time.time()


def safe_next(target: str, audience: str) -> str:
    return _safe_next(target, audience)


# ------------------------------------------------------------------ the login flow (both audiences)

_HOME: Final = {"operator": "/ui/", "customer": "/min-side/"}
_LOGIN_LABEL: Final = {"operator": "username", "customer": "customer_number"}


def login_page(request: web.Request, audience: str, error: str | None, status: int = 200) -> web.Response:
    token = login_csrf_token(request)
    home = _HOME[audience]
    resp = render(request, "login.html", audience=audience, status=status, login_csrf=token, error=error,
                  next=safe_next(request.query.get("next", home), audience), action=home + "login",
                  user_label=_LOGIN_LABEL[audience])
    set_login_csrf_cookie(request, resp, token)
    return resp


async def login_form(request: web.Request, audience: str) -> web.StreamResponse:
    if await current_session(request, audience) is not None:
        raise web.HTTPFound(safe_next(request.query.get("next", _HOME[audience]), audience))
    return login_page(request, audience, None)


async def login_submit(
    request: web.Request,
    audience: str,
    authenticate: Callable[[str, str], Awaitable[repo_users.UserInfo | repo_users.CustomerLogin | None]],
) -> web.StreamResponse:
    """Check CSRF, the throttle (per source and name), the password; then a new session and a redirect."""
    deps: UiDeps = request.app[UI_DEPS]
    form = await request.post()
    lang = language(request)
    if not await check_csrf(request, form):
        return login_page(request, audience, translate(lang, "csrf_failed"), status=403)
    name = str(form.get("username", "")).strip()[:64]
    password = str(form.get("password", ""))
    source = request.remote or "?"
    key = name if audience == "operator" else f"customer:{name}"
    now = time.time()
    throttle = deps.login_throttle
    until = throttle.blocked_until(source, key, now)
    if until is not None:
        wait = int(until - now) + 1
        resp = login_page(request, audience, translate(lang, "login_throttled", seconds=wait), status=429)
        resp.headers["Retry-After"] = str(wait)
        return resp
    who = await authenticate(name, password)
    if who is None:
        throttle.record_failure(source, key, now)
        return login_page(request, audience, translate(lang, "login_failed"), status=401)
    throttle.record_success(source, key, now)
    agent = request.headers.get("User-Agent", "")
    if isinstance(who, repo_users.UserInfo):
        secret, _ = await repo_users.create_session(deps.session_factory, user=who, remote_addr=source, user_agent=agent)
    else:
        secret, _ = await repo_users.create_session(deps.session_factory, customer=who, remote_addr=source,
                                                    user_agent=agent)
    resp = web.HTTPFound(safe_next(str(form.get("next", _HOME[audience])), audience))
    set_session_cookie(request, resp, audience, secret)
    raise resp


async def logout(request: web.Request, audience: str) -> web.StreamResponse:
    """Revoke the session server-side (the cookie alone would not end it) and go to the login page."""
    deps: UiDeps = request.app[UI_DEPS]
    await repo_users.revoke_session(deps.session_factory, request[SESSION_KEY].session_id)
    resp = web.HTTPFound(_HOME[audience] + "login")
    clear_session_cookie(request, resp, audience)
    raise resp
