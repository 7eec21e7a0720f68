"""Star codes dialled on a line: the operator's policy, carrying them out, and what the caller hears.

The B2BUA asks ``feature_codes.parse`` before the numbering plan; a line's
INVITE whose Request-URI user is a code comes here instead of being routed
(``StarCodes.handle``). What happens, in order:

1. **Invalid code** (``*33#``, ``*21*#`` …): ``invalid_number`` with its prompt.
2. **Policy** (``feature_code_policies``, defaults in ``feature_codes.policy``):
   a refused code plays its own announcement (``fwd_use_web`` for the
   activations by default: "use Min side") and ends ``feature_code_refused``.
   ``#21#`` and ``##002#`` are never refused.
3. **Activation** validates the target with the policy service's own
   ``set_forwarding`` (the API's ``validate_forward``), and before that checks
   the line's and its customer's outgoing barring against the target: a line
   barred from calling a number may not forward to it either (the forwarded
   leg would be refused as ``forward_not_allowed`` on every call). Either
   refusal plays ``forward_not_allowed`` (``invalid_number`` for a target
   that is no number at all).
4. The change is written with an audit event whose actor is
   ``line:<number> via star code``; the caller hears "forwarding is on to
   2 2 0 0 0 0 0 2", "forwarding is off", or the status with the target read
   digit by digit, and the call ends ``feature_code`` (480, Q.850 16).

Every star-code call ends in one CDR like any refused call (the manager's
``on_end``). The prompts are played by the A-leg's announcer when one is
installed; without it the caller gets the final response alone.

Changes are bounded per line (``max_changes`` per ``change_window`` seconds,
default 10 a minute): a looping adapter or a stolen password cannot turn
star codes into a stream of database writes and audit rows; past the limit
the code is refused (``service_not_available``) and nothing is written.
Status read-outs are not counted.

The policies live in memory: loaded at start, replaced at once by
:meth:`StarCodes.set_policy` (the API), and reloaded within
``reload_interval`` seconds when another process changes the table.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from feature_codes import (
    Action,
    CodePolicy,
    FeaturePolicies,
    FeatureRequest,
    InvalidCode,
    ParseResult,
    validate,
)
from switch.media.catalogue import digit_keys
from switch.store.engine import SessionFactory
from switch.store.models import BarringCategory, ForwardKind
from switch.store.repo_feature_codes import (
    FeatureCodeRow,
    feature_code_fingerprint,
    load_feature_code_policies,
    write_feature_code_policy,
)

from .b2bua.causes import Cause
from .lines import LineInfo
from .numbering import normalise
from .periodic import Periodic
from .policy.categories import category_of
from .policy.model import ForwardRule, PolicyState
from .policy.validate import PolicyValidationError

if TYPE_CHECKING:
    from .b2bua.call import Call

__all__ = [
    "ForwardingControl",
    "Outcome",
    "StarCodeHandler",
    "StarCodes",
    "actor_for",
    "spoken_number",
    "barred_category",
]

log = logging.getLogger("switch.star_codes")


class ForwardingControl(Protocol):
    """What star codes need of the policy service (``switch.services.policy.service.PolicyService``)."""

    state: PolicyState

    async def set_forwarding(
        self, line_id: int, kind: ForwardKind | str, target: str, timeout_s: int | None, actor: str
    ) -> ForwardRule: ...

    async def clear_forwarding(self, line_id: int, kind: ForwardKind | None, actor: str) -> list[str]: ...

    def forwarding(self, line_id: int) -> list[ForwardRule]: ...


class StarCodeHandler(Protocol):
    """What the B2BUA hands a line's star-code INVITE to (``StarCodes``)."""

    def handle(self, call: Call, line: LineInfo, parsed: ParseResult) -> None: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a star-code call ends: the cause (CDR, final response) and what is spoken first."""

    cause: Cause
    prompts: tuple[str, ...] = ()
    detail: str = ""


def actor_for(line: LineInfo) -> str:
    """The audit actor of a change made by dialling a code on ``line``."""
    return f"line:{line.number} via star code"


def spoken_number(target: str, country_code: str = "47") -> str:
    """What the caller hears read back: the national form for our country, else 00 + the E.164 digits."""
    prefix = "+" + country_code
    if target.startswith(prefix):
        return target[len(prefix) :]
    if target.startswith("+"):
        return "00" + target[1:]
    return target


def barred_category(state: PolicyState, line_id: int, target: str, country_code: str = "47") -> BarringCategory | None:
    """The line's (or its customer's) barring category that forbids calling ``target``; None if allowed."""
    lp = state.lines.get(line_id)
    if lp is None:
        return None
    customer = state.customers.get(lp.customer_id)
    barred = lp.barring | (customer.barring if customer is not None else frozenset())
    if not barred:
        return None
    if BarringCategory.ALL_OUTGOING in barred:
        return BarringCategory.ALL_OUTGOING
    category = category_of(normalise(target, country_code))
    return category if category is not None and category in barred else None


class StarCodes:
    """Per-code policy in memory, and the executor the B2BUA hands star-code calls to."""

    def __init__(
        self,
        session_factory: SessionFactory,
        forwarding: ForwardingControl,
        *,
        country_code: str = "47",
        reload_interval: float = 5.0,
        max_changes: int = 10,
        change_window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sf = session_factory
        self.forwarding = forwarding
        self.country_code = country_code
        self.reload_interval = reload_interval
        self.policies = FeaturePolicies()
        self._fingerprint: object = None
        self._version = 0
        self._reload = Periodic("reloading star-code policies", self._reload_step, reload_interval)
        self._running: set[asyncio.Task[Any]] = set()
        self.max_changes = max_changes
        self.change_window = change_window
        self.clock = clock
        self._changes: dict[int, deque[float]] = {}

    # -- policy ---------------------------------------------------------------------------
    async def load(self) -> None:
        version = self._version
        fp = await feature_code_fingerprint(self.sf)
        rows = await load_feature_code_policies(self.sf)
        if version != self._version:
            return  # changed here meanwhile; the next tick sees a new fingerprint
        policies = FeaturePolicies(CodePolicy(r.code, r.enabled, r.announcement, r.description) for r in rows)
        for refused in policies.ignored:
            log.error("feature_code_policies row ignored: %s", refused)
        self.policies = policies
        self._fingerprint = fp

    async def reload_if_changed(self) -> bool:
        if await feature_code_fingerprint(self.sf) == self._fingerprint:
            return False
        await self.load()
        return True

    def start(self) -> None:
        self._reload.start()

    async def _reload_step(self) -> None:
        """A failed reload is logged by the job; the policies we have stay."""
        await self.reload_if_changed()

    async def close(self) -> None:
        await self._reload.stop()
        tasks = list(self._running)
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass

    async def set_policy(self, policy: CodePolicy, actor: str) -> CodePolicy:
        """Store one code's policy (PolicyError: unknown code, a locked code refused, bad prompt key)."""
        validate(policy)
        old = self.policies.get(policy.code)
        row = FeatureCodeRow(policy.code, policy.enabled, policy.announcement, policy.description)
        previous = FeatureCodeRow(old.code, old.enabled, old.announcement, old.description)
        await write_feature_code_policy(self.sf, row, actor, previous)
        self._version += 1
        self.policies = self.policies.with_policy(policy)
        return self.policies.get(policy.code)

    # -- calls ---------------------------------------------------------------------------------
    def handle(self, call: Call, line: LineInfo, parsed: ParseResult) -> None:
        """Carry out ``parsed`` for ``call`` (a line's INVITE) and end the call with the result."""
        task = asyncio.get_running_loop().create_task(self._run(call, line, parsed))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, call: Call, line: LineInfo, parsed: ParseResult) -> None:
        from .b2bua.call import CallState

        try:
            outcome = await self.execute(line, parsed)
        except Exception:  # noqa: BLE001 - the caller must still get an answer
            log.exception("star code %r on %s failed", getattr(parsed, "dialled", "?"), line.number)
            outcome = Outcome(Cause.INTERNAL_ERROR, ("service_not_available",), "error")
        log.info("star code %s on %s: %s %s", getattr(parsed, "dialled", "?"), line.number, outcome.cause.value,
                 outcome.detail)
        if call.state is not CallState.ENDED:  # the caller may have hung up meanwhile
            call.reject(outcome.cause, prompts=outcome.prompts)

    async def execute(self, line: LineInfo, parsed: ParseResult) -> Outcome:
        """Apply the policy and carry out the code for ``line``; the result to tell the caller."""
        if isinstance(parsed, InvalidCode):
            return Outcome(Cause.INVALID_NUMBER, ("invalid_number",), parsed.reason)
        policy = self.policies.get(parsed.key)
        if not policy.enabled:
            return Outcome(Cause.FEATURE_CODE_REFUSED, (policy.prompt,), f"{parsed.key} refused by policy")
        actor = actor_for(line)
        if parsed.action is not Action.STATUS and not self._may_change(line.line_id):
            return Outcome(Cause.FEATURE_CODE_REFUSED, ("service_not_available",), "too many changes")
        if parsed.action is Action.CANCEL_ALL:
            removed = await self.forwarding.clear_forwarding(line.line_id, None, actor)
            return Outcome(Cause.FEATURE_CODE, ("fwd_all_off",), f"cleared {removed}")
        assert parsed.condition is not None
        kind = ForwardKind(parsed.condition.value)
        if parsed.action is Action.DEACTIVATE:
            removed = await self.forwarding.clear_forwarding(line.line_id, kind, actor)
            return Outcome(Cause.FEATURE_CODE, ("fwd_off",), f"cleared {removed}")
        if parsed.action is Action.STATUS:
            rules: Mapping[ForwardKind, ForwardRule] = {r.kind: r for r in self.forwarding.forwarding(line.line_id)}
            rule = rules.get(kind)
            if rule is None:
                return Outcome(Cause.FEATURE_CODE, ("fwd_status_off",), f"{kind.value}: off")
            spoken = digit_keys(spoken_number(rule.target, self.country_code))
            return Outcome(Cause.FEATURE_CODE, ("fwd_status_on", *spoken), f"{kind.value}: {rule.target}")
        return await self._activate(line, parsed, kind, actor)

    def _may_change(self, line_id: int) -> bool:
        """Count one change for the line; False past ``max_changes`` in the last ``change_window`` s."""
        now = self.clock()
        recent = self._changes.setdefault(line_id, deque())
        while recent and recent[0] <= now - self.change_window:
            recent.popleft()
        if len(recent) >= self.max_changes:
            return False
        recent.append(now)
        if len(self._changes) > 10_000:  # forget lines that have been quiet for a window
            self._changes = {k: v for k, v in self._changes.items() if v and v[-1] > now - self.change_window}
        return True

    async def _activate(self, line: LineInfo, parsed: FeatureRequest, kind: ForwardKind, actor: str) -> Outcome:
        assert parsed.target is not None
        barred = barred_category(self.forwarding.state, line.line_id, parsed.target, self.country_code)
        if barred is not None:
            return Outcome(Cause.FORWARD_NOT_ALLOWED, ("forward_not_allowed",), f"target barred ({barred.value})")
        try:
            rule = await self.forwarding.set_forwarding(line.line_id, kind, parsed.target, parsed.ring_time_s, actor)
        except PolicyValidationError as exc:
            if exc.field == "target" and "not a telephone number" in exc.message:
                return Outcome(Cause.INVALID_NUMBER, ("invalid_number",), exc.message)
            return Outcome(Cause.FORWARD_NOT_ALLOWED, ("forward_not_allowed",), str(exc))
        spoken = digit_keys(spoken_number(rule.target, self.country_code))
        return Outcome(Cause.FEATURE_CODE, ("fwd_on", *spoken), f"{kind.value} -> {rule.target}")
