"""Which star codes a line may use: the operator's per-code policy, in memory, pure.

The operator's FAQ tells customers that forwarding is managed on the
self-service page ("Min side"): "you cannot dial ``*21*`` to forward; if you
already did, dial ``#21#`` to cancel". So by default every *activation*
(``*21*``, ``*61*``, ``*62*``, ``*67*``) is refused with an announcement
that says so, while deactivation and status work. ``#21#`` and ``##002#``
always work: they are how a customer undoes a forwarding set by mistake (on
another switch, or before the operator changed the policy), so nothing —
neither a stored row nor an API call — can disable them.

Stored rows (``feature_code_policies``) override the defaults code by code;
a code without a row has its default. This module only validates and
answers; the store and the reload live in ``switch.services.star_codes``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Final

from .parser import CODES

__all__ = [
    "ALWAYS_ENABLED",
    "CodePolicy",
    "DEFAULT_POLICIES",
    "FeaturePolicies",
    "PolicyError",
    "REFUSED_PROMPT",
    "USE_SELF_SERVICE_PROMPT",
    "validate",
]

#: Codes that cannot be refused: the way back from a forwarding set by mistake.
ALWAYS_ENABLED: Final = frozenset({"#21#", "##002#"})
#: The announcement of a refused code without one of its own ("this service is not available").
REFUSED_PROMPT: Final = "service_not_available"
#: "You cannot dial star codes to forward; use Min side": the default for refused activations.
USE_SELF_SERVICE_PROMPT: Final = "fwd_use_web"
_MAX_PROMPT_KEY: Final = 64
_MAX_DESCRIPTION: Final = 200


class PolicyError(ValueError):
    """A policy the operator may not set; ``field`` names what is wrong (for a 4xx body)."""

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(f"{code}: {field}: {message}")
        self.code = code
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class CodePolicy:
    """One code's policy. ``announcement``: prompt key played when refused (None = the generic one)."""

    code: str
    enabled: bool
    announcement: str | None = None
    description: str = ""

    @property
    def prompt(self) -> str:
        """What a refused caller hears."""
        return self.announcement or REFUSED_PROMPT

    @property
    def locked(self) -> bool:
        """True for the codes that can never be refused."""
        return self.code in ALWAYS_ENABLED


def _defaults() -> dict[str, CodePolicy]:
    out: dict[str, CodePolicy] = {}
    for code in CODES:
        if code.startswith("*") and not code.startswith("*#"):
            out[code] = CodePolicy(
                code, False, USE_SELF_SERVICE_PROMPT, "Forwarding is set on Min side, not by star code"
            )
        elif code in ALWAYS_ENABLED:
            out[code] = CodePolicy(code, True, None, "Always works: undoes a forwarding set by mistake")
        else:
            out[code] = CodePolicy(code, True, None, "")
    return out


DEFAULT_POLICIES: Final[Mapping[str, CodePolicy]] = _defaults()


def validate(policy: CodePolicy) -> CodePolicy:
    """The policy as it may be stored, or PolicyError (unknown code, locked code refused, bad key)."""
    if policy.code not in DEFAULT_POLICIES:
        raise PolicyError(policy.code, "code", f"unknown code; known: {', '.join(CODES)}")
    if not policy.enabled and policy.locked:
        raise PolicyError(
            policy.code, "enabled", "this code always works (it undoes a forwarding) and cannot be refused"
        )
    key = policy.announcement
    if key is not None and (
        not key or len(key) > _MAX_PROMPT_KEY or not key.isascii() or not key.replace("_", "").isalnum()
    ):
        raise PolicyError(policy.code, "announcement", "a prompt key: letters, digits and _, at most 64")
    if len(policy.description) > _MAX_DESCRIPTION:
        raise PolicyError(policy.code, "description", f"at most {_MAX_DESCRIPTION} characters")
    return policy


class FeaturePolicies:
    """The defaults with the operator's overrides applied; immutable, replaced on change."""

    __slots__ = ("_by_code", "ignored")

    def __init__(self, overrides: Iterable[CodePolicy] = ()) -> None:
        by_code = dict(DEFAULT_POLICIES)
        #: Stored rows that were not applied, with why (a locked code refused by hand in SQL …).
        self.ignored: list[PolicyError] = []
        for policy in overrides:
            try:
                by_code[policy.code] = validate(policy)
            except PolicyError as exc:
                self.ignored.append(exc)
        self._by_code = by_code

    def get(self, code: str) -> CodePolicy:
        """Policy of a known code (KeyError for an unknown one)."""
        return self._by_code[code]

    def allowed(self, code: str) -> bool:
        return self._by_code[code].enabled

    def with_policy(self, policy: CodePolicy) -> FeaturePolicies:
        """A copy with ``policy`` applied; PolicyError if it may not be set."""
        validate(policy)
        return FeaturePolicies([*self._by_code.values(), policy])

    def all(self) -> list[CodePolicy]:
        """Every code's policy, in the order of ``CODES``."""
        return [self._by_code[c] for c in CODES]

    def is_default(self, code: str) -> bool:
        return replace(self._by_code[code], description="") == replace(DEFAULT_POLICIES[code], description="")
