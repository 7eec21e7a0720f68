"""GSM-style star codes (``*21*N#``, ``#21#``, ``*#21#``, ``##002#`` …): parsing and operator policy.

Pure: no I/O, no clock. The B2BUA asks :func:`parse` before the numbering
plan; ``switch.services.star_codes`` carries out what it returns.
"""

from .parser import (
    CODES,
    RING_TIME_MAX,
    RING_TIME_MIN,
    Action,
    Condition,
    FeatureRequest,
    InvalidCode,
    ParseResult,
    parse,
    policy_key,
)
from .policy import (
    ALWAYS_ENABLED,
    DEFAULT_POLICIES,
    REFUSED_PROMPT,
    USE_SELF_SERVICE_PROMPT,
    CodePolicy,
    FeaturePolicies,
    PolicyError,
    validate,
)

__all__ = [
    "ALWAYS_ENABLED",
    "Action",
    "CODES",
    "CodePolicy",
    "Condition",
    "DEFAULT_POLICIES",
    "FeaturePolicies",
    "FeatureRequest",
    "InvalidCode",
    "ParseResult",
    "PolicyError",
    "REFUSED_PROMPT",
    "RING_TIME_MAX",
    "RING_TIME_MIN",
    "USE_SELF_SERVICE_PROMPT",
    "parse",
    "policy_key",
    "validate",
]
