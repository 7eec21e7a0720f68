"""A customer's postal address, validated once for the import file and the API.

Why one module: the import file (``customers[0].address.postcode``) and the
customers API (``address.postcode``) must accept and refuse the same things,
with the same words. Norwegian addresses only: the postcode is exactly four
digits (a string: YAML would read ``0150`` as the octal number 104).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ADDRESS_FIELDS", "Address", "parse_address"]

ADDRESS_FIELDS = ("street", "postcode", "city")
_MAX = {"street": 200, "postcode": 4, "city": 100}
_POSTCODE = re.compile(r"[0-9]{4}")


@dataclass(frozen=True, slots=True)
class Address:
    street: str
    postcode: str
    city: str

    def as_dict(self) -> dict[str, str]:
        return {"street": self.street, "postcode": self.postcode, "city": self.city}

    def one_line(self) -> str:
        """``Storgata 1, 0150 Oslo`` (how a directory prints it)."""
        return f"{self.street}, {self.postcode} {self.city}"


def parse_address(value: Any, path: str, err: Callable[[str, str], None]) -> Address | None:
    """An ``{street, postcode, city}`` object → ``Address``; each problem reported as ``err(path.field, msg)``.

    Returns None when anything is wrong (and then at least one ``err`` was called).
    """
    if not isinstance(value, dict):
        err(path, "must be an object with street, postcode (4 digits) and city, or null")
        return None
    ok = True
    for key in sorted(set(value) - set(ADDRESS_FIELDS)):
        err(f"{path}.{key}", "unknown field (street, postcode, city)")
        ok = False
    got: dict[str, str] = {}
    for key in ADDRESS_FIELDS:
        raw = value.get(key)
        where = f"{path}.{key}"
        if raw is None:
            err(where, "required")
            ok = False
            continue
        if not isinstance(raw, str):
            hint = ' (quote it: "0150")' if key == "postcode" else ""
            err(where, f"must be a string{hint}")
            ok = False
            continue
        text = raw.strip()
        if not text:
            err(where, "must not be empty")
            ok = False
        elif any(ord(c) < 32 for c in text):
            err(where, "must not contain control characters")
            ok = False
        elif key == "postcode" and not _POSTCODE.fullmatch(text):
            err(where, f"must be a Norwegian postcode of 4 digits, got {text!r}")
            ok = False
        elif len(text) > _MAX[key]:
            err(where, f"at most {_MAX[key]} characters")
            ok = False
        else:
            got[key] = text
    if not ok:
        return None
    return Address(got["street"], got["postcode"], got["city"])
