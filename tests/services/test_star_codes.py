"""Star codes carried out against the real policy service and a real database (SQLite and PostgreSQL).

What the caller hears (cause + prompts), what is stored (forwarding_rules), and who the audit
trail says did it, for every kind of code; the per-code policy in memory, its persistence, and
the two codes nobody can refuse.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from feature_codes import CodePolicy, PolicyError, parse
from switch.services.b2bua.causes import Cause
from switch.services.lines import LineDirectory, LineInfo
from switch.services.policy.service import PolicyService
from switch.services.star_codes import StarCodes, barred_category, spoken_number
from switch.store import models as m
from switch.store.crypto import SecretBox
from switch.store.repo_lines import load_credentials
from tests.conftest_db import MigratedDb
from tests.store.helpers import add_line

REALM = "voip.example.no"
D2 = ("digit_2", "digit_2", "digit_0", "digit_0", "digit_0", "digit_0", "digit_0", "digit_2")


class World:
    def __init__(self, db: MigratedDb, lines: LineDirectory, policy: PolicyService, codes: StarCodes) -> None:
        self.db, self.lines, self.policy, self.codes = db, lines, policy, codes

    @property
    def kari(self) -> LineInfo:
        line = self.lines.line_for_number("+4722000001")
        assert line is not None
        return line

    async def dial(self, dialled: str) -> tuple[Cause, tuple[str, ...]]:
        parsed = parse(dialled)
        assert parsed is not None, dialled
        out = await self.codes.execute(self.kari, parsed)
        return out.cause, out.prompts

    async def rules(self) -> dict[str, tuple[str, int | None, str | None]]:
        async with self.db.session_factory() as s:
            rows = (await s.execute(select(m.ForwardingRule).where(m.ForwardingRule.line_id == self.kari.line_id))).scalars()
            return {r.kind.value: (r.target, r.timeout_s, r.updated_by) for r in rows}

    async def audit(self) -> list[tuple[str, str]]:
        async with self.db.session_factory() as s:
            rows = (await s.execute(select(m.AuditEvent).order_by(m.AuditEvent.id))).scalars()
            return [(e.actor, e.action) for e in rows]


@pytest.fixture
async def world(migrated_db: MigratedDb, secret_box: SecretBox) -> Any:
    sf = migrated_db.session_factory
    await add_line(sf, secret_box, REALM)
    await add_line(sf, secret_box, REALM, port=2, number="+4722000002", auth_user="22000002", password="Tel2-secret-02")

    async def load() -> list[LineInfo]:
        creds = await load_credentials(sf, REALM, secret_box=secret_box)
        return [LineInfo(c.line_id, c.auth_user, c.number, c.ha1_md5, c.ha1_sha256, c.adapter_id, c.port)
                for c in creds.values()]

    async def fingerprint() -> object:
        return None

    lines = LineDirectory(load, fingerprint)
    await lines.reload()
    policy = PolicyService(sf, lines, reload_interval=0)
    await policy.load()
    codes = StarCodes(sf, policy, reload_interval=0)
    await codes.load()
    yield World(migrated_db, lines, policy, codes)
    await codes.close()
    await policy.close()


async def allow_activation(w: World, *codes: str) -> None:
    for code in codes:
        await w.codes.set_policy(CodePolicy(code, True), "operator:test")


async def test_default_policy_refuses_activation_with_the_self_service_prompt(world: World) -> None:
    assert await world.dial("*21*22000002#") == (Cause.FEATURE_CODE_REFUSED, ("fwd_use_web",))
    assert await world.rules() == {}


async def test_activation_deactivation_and_status_of_each_kind(world: World) -> None:
    await allow_activation(world, "*21*", "*61*", "*62*", "*67*")
    assert await world.dial("*21*22000002%23") == (Cause.FEATURE_CODE, ("fwd_on", *D2))
    assert await world.dial("*61*91234567*30#") == (Cause.FEATURE_CODE, ("fwd_on", "digit_9", "digit_1", "digit_2",
                                                                         "digit_3", "digit_4", "digit_5", "digit_6", "digit_7"))
    assert await world.dial("*62*22000002#") == (Cause.FEATURE_CODE, ("fwd_on", *D2))
    assert await world.dial("*67*22000002#") == (Cause.FEATURE_CODE, ("fwd_on", *D2))
    actor = "line:+4722000001 via star code"
    assert await world.rules() == {
        "unconditional": ("+4722000002", None, actor), "no_answer": ("+4791234567", 30, actor),
        "unreachable": ("+4722000002", None, actor), "busy": ("+4722000002", None, actor),
    }
    assert await world.dial("*#21#") == (Cause.FEATURE_CODE, ("fwd_status_on", *D2))
    assert await world.dial("#21#") == (Cause.FEATURE_CODE, ("fwd_off",))
    assert await world.dial("*#21#") == (Cause.FEATURE_CODE, ("fwd_status_off",))
    assert await world.dial("#67#") == (Cause.FEATURE_CODE, ("fwd_off",))
    assert set(await world.rules()) == {"no_answer", "unreachable"}
    assert await world.dial("##002#") == (Cause.FEATURE_CODE, ("fwd_all_off",))
    assert await world.rules() == {}
    actors = {a for a, _ in await world.audit()}
    assert actor in actors and "operator:test" in actors
    # The very next call sees it: the policy service's memory changed with the row.
    assert world.policy.forwarding(world.kari.line_id) == []


async def test_no_answer_without_ring_time_gets_the_apis_default(world: World) -> None:
    await allow_activation(world, "*61*")
    await world.dial("*61*22000002#")
    assert (await world.rules())["no_answer"][1] == 20


@pytest.mark.parametrize(
    ("dialled", "cause", "prompt"),
    [
        ("*21*112#", Cause.FORWARD_NOT_ALLOWED, "forward_not_allowed"),  # emergency numbers: never a target
        ("*21*22000001#", Cause.FORWARD_NOT_ALLOWED, "forward_not_allowed"),  # itself
        ("*21*82012345#", Cause.FORWARD_NOT_ALLOWED, "forward_not_allowed"),  # premium: not a forwarding class
        ("*21*12#", Cause.INVALID_NUMBER, "invalid_number"),  # no number at all
        ("*33*1234#", Cause.INVALID_NUMBER, "invalid_number"),  # not a code we know
    ],
)
async def test_targets_the_api_refuses_are_refused_by_star_code_too(world: World, dialled: str, cause: Cause,
                                                                   prompt: str) -> None:
    await allow_activation(world, "*21*")
    assert await world.dial(dialled) == (cause, (prompt,))
    assert await world.rules() == {}


async def test_a_target_the_lines_barring_forbids_is_refused(world: World) -> None:
    await allow_activation(world, "*21*")
    await world.policy.set_line_barring(world.kari.line_id, frozenset({m.BarringCategory.MOBILE}), "operator:test")
    assert barred_category(world.policy.state, world.kari.line_id, "91234567") is m.BarringCategory.MOBILE
    assert await world.dial("*21*91234567#") == (Cause.FORWARD_NOT_ALLOWED, ("forward_not_allowed",))
    assert await world.rules() == {}
    assert (await world.dial("*21*22000002#"))[0] is Cause.FEATURE_CODE  # a fixed number is not barred


async def test_hash_21_and_cancel_all_work_whatever_the_table_says(world: World) -> None:
    await allow_activation(world, "*21*")
    await world.dial("*21*22000002#")
    # Refused through the service: not stored.
    for code in ("#21#", "##002#"):
        with pytest.raises(PolicyError):
            await world.codes.set_policy(CodePolicy(code, False), "operator:test")
    # Written around the API, straight into the table: ignored at load, and said so.
    async with world.db.session_factory() as s, s.begin():
        s.add(m.FeatureCodePolicy(code="#21#", action=m.FeatureCodeAction.REFUSE, announcement=None, description=""))
        s.add(m.FeatureCodePolicy(code="##002#", action=m.FeatureCodeAction.REFUSE, announcement=None, description=""))
    assert await world.codes.reload_if_changed()
    assert world.codes.policies.allowed("#21#") and world.codes.policies.allowed("##002#")
    assert {e.code for e in world.codes.policies.ignored} == {"##002#", "#21#"}
    assert await world.dial("#21#") == (Cause.FEATURE_CODE, ("fwd_off",))
    assert await world.rules() == {}


async def test_a_refused_code_plays_its_own_announcement(world: World) -> None:
    await world.codes.set_policy(CodePolicy("*#21#", False, "service_not_available"), "operator:test")
    assert await world.dial("*#21#") == (Cause.FEATURE_CODE_REFUSED, ("service_not_available",))
    await world.codes.set_policy(CodePolicy("#61#", False), "operator:test")
    assert await world.dial("#61#") == (Cause.FEATURE_CODE_REFUSED, ("service_not_available",))


async def test_policies_survive_a_restart_and_another_process_change_is_picked_up(world: World) -> None:
    await world.codes.set_policy(CodePolicy("*21*", True, None, "allowed for a trial"), "operator:test")
    fresh = StarCodes(world.db.session_factory, world.policy, reload_interval=0)
    await fresh.load()
    assert fresh.policies.allowed("*21*") and fresh.policies.get("*21*").description == "allowed for a trial"
    async with world.db.session_factory() as s, s.begin():
        await s.execute(update(m.FeatureCodePolicy).where(m.FeatureCodePolicy.code == "*21*")
                        .values(action=m.FeatureCodeAction.REFUSE, announcement="service_not_available"))
    assert await fresh.reload_if_changed()
    assert not fresh.policies.allowed("*21*")
    assert not await fresh.reload_if_changed()


def test_spoken_number() -> None:
    assert spoken_number("+4722000002") == "22000002"
    assert spoken_number("+46812345678") == "0046812345678"
    assert spoken_number("02800") == "02800"


async def test_changes_per_line_are_bounded_and_status_is_not_counted(world: World) -> None:
    now = [1000.0]
    limited = StarCodes(world.db.session_factory, world.policy, reload_interval=0, max_changes=3, change_window=60.0,
                        clock=lambda: now[0])
    await limited.load()
    line = world.kari
    for _ in range(3):
        assert (await limited.execute(line, parse("#21#"))).cause is Cause.FEATURE_CODE  # type: ignore[arg-type]
    for _ in range(5):
        assert (await limited.execute(line, parse("*#21#"))).cause is Cause.FEATURE_CODE  # type: ignore[arg-type]
    refused = await limited.execute(line, parse("##002#"))  # type: ignore[arg-type]
    assert (refused.cause, refused.prompts) == (Cause.FEATURE_CODE_REFUSED, ("service_not_available",))
    await allow_activation(world, "*21*")
    await limited.load()
    refused = await limited.execute(line, parse("*21*22000002#"))  # type: ignore[arg-type]
    assert refused.cause is Cause.FEATURE_CODE_REFUSED and await world.rules() == {}  # nothing written
    assert (await world.dial("*21*22000002#"))[0] is Cause.FEATURE_CODE  # another StarCodes, its own count
    now[0] += 60.0  # a minute later the line may change again
    assert (await limited.execute(line, parse("##002#"))).cause is Cause.FEATURE_CODE  # type: ignore[arg-type]
    assert await world.rules() == {}
