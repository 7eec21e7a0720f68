"""In-memory directory of lines, refreshed from the database.

Every REGISTER and INVITE needs the caller's credentials and the callee's
line; a database round trip for each would dominate the cost of a call. The
directory is reloaded periodically and on demand (after an import or an API
change), which keeps it within seconds of the database.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

__all__ = ["LineInfo", "LineDirectory", "normalise_aor_user"]


@dataclass(frozen=True, slots=True)
class LineInfo:
    line_id: int
    auth_user: str
    number: str  # E.164 with '+'
    ha1_md5: str
    ha1_sha256: str
    adapter_id: int | None
    port: int
    language: str = "nb"
    enabled: bool = True
    alarm: bool = False


def normalise_aor_user(user: str, country_code: str = "47") -> str:
    """Map the user part of an AOR to E.164 ('+4722000001') where it is a number."""
    u = user.split(";", 1)[0]
    digits = u.lstrip("+")
    if not digits.isdigit():
        return u
    if u.startswith("+"):
        return u
    if digits.startswith("00"):
        return "+" + digits[2:]
    if len(digits) == 8:
        return f"+{country_code}{digits}"
    if len(digits) == 10 and digits.startswith(country_code):
        return "+" + digits
    return u


class LineDirectory:
    def __init__(
        self,
        load: Callable[[], Awaitable[Iterable[LineInfo]]],
        fingerprint: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._load = load
        self._fingerprint = fingerprint
        self._last_fp: object = None
        self.by_user: dict[str, LineInfo] = {}
        self.by_number: dict[str, LineInfo] = {}
        self.by_id: dict[int, LineInfo] = {}
        self.by_adapter: dict[int, list[LineInfo]] = {}

    async def reload_if_changed(self) -> bool:
        """Reload only when the lines table changed (a cheap aggregate query first)."""
        if self._fingerprint is None:
            await self.reload()
            return True
        fp = await self._fingerprint()
        if fp == self._last_fp:
            return False
        await self.reload()
        self._last_fp = fp
        return True

    async def reload(self) -> None:
        if self._fingerprint is not None and self._last_fp is None:
            self._last_fp = await self._fingerprint()
        lines = list(await self._load())
        self.by_user = {li.auth_user: li for li in lines if li.enabled}
        self.by_number = {li.number: li for li in lines}
        self.by_id = {li.line_id: li for li in lines}
        by_adapter: dict[int, list[LineInfo]] = {}
        for li in lines:
            if li.adapter_id is not None:
                by_adapter.setdefault(li.adapter_id, []).append(li)
        self.by_adapter = by_adapter

    def credential(self, auth_user: str) -> LineInfo | None:
        return self.by_user.get(auth_user)

    def adapter_lines(self, adapter_id: int) -> list[LineInfo]:
        return self.by_adapter.get(adapter_id, [])

    def line_for_number(self, user_part: str) -> LineInfo | None:
        return self.by_number.get(normalise_aor_user(user_part))
