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
    def __init__(self, load: Callable[[], Awaitable[Iterable[LineInfo]]]) -> None:
        self._load = load
        self.by_user: dict[str, LineInfo] = {}
        self.by_number: dict[str, LineInfo] = {}
        self.by_id: dict[int, LineInfo] = {}

    async def reload(self) -> None:
        lines = list(await self._load())
        self.by_user = {li.auth_user: li for li in lines if li.enabled}
        self.by_number = {li.number: li for li in lines}
        self.by_id = {li.line_id: li for li in lines}

    def credential(self, auth_user: str) -> LineInfo | None:
        return self.by_user.get(auth_user)

    def line_for_number(self, user_part: str) -> LineInfo | None:
        return self.by_number.get(normalise_aor_user(user_part))
