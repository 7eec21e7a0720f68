"""Skips fail the run: a plugin loaded by tests/conftest.py (``pytest_plugins``).

In CI every dependency is installed (scripts/bootstrap.sh --test), so a skipped test is
a test that did not run while the run looked green. Every skip and every xfail is
therefore listed at the end of the run with its reason, and unless it is on
``ALLOWED_SKIPS`` below (one entry per test, each with the reason text it must carry
and why it is acceptable), pytest's exit status becomes 1 (tests failed) at session
end. That covers ``pytest.skip``/``skipif``/``importorskip``/``unittest.SkipTest`` in
a test, a fixture or at module level (a skipped collection), and xfail: an expected
failure is a test that does not test, and ``xfail_strict`` (pyproject) makes an
unexpected pass fail as well.

``SOFTSWITCH_TEST_REPORT=FILE`` (set by scripts/test.sh) makes the plugin write the
counts as ``key=value`` lines there, for the script's one-line summary.

Under pytest-xdist (scripts/test.sh runs ``-n``) the controller hears every worker's test
reports and its skipped collections through the same hooks, so the policy decides, prints
and writes the report there, once for the whole run; a worker only runs tests and leaves
both the report file and the exit status to the controller.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["ALLOWED_SKIPS", "AllowedSkip", "SkipPolicy"]

REPORT_ENV = "SOFTSWITCH_TEST_REPORT"


@dataclass(frozen=True)
class AllowedSkip:
    """A skip that may happen: only with this reason, and for the stated cause."""

    reason_contains: str
    why: str


#: Node id (without the parameter part) → the one skip that test may report.
#: Keep this short: every entry is coverage CI does not have.
ALLOWED_SKIPS: dict[str, AllowedSkip] = {
    # Only when someone runs the suite with SOFTSWITCH_PURE_PYTHON=1 on purpose (to test the
    # pure-Python core); CI never sets it, so in CI this test runs and must find the compiled core.
    "tests/test_core_loader.py::test_built_core_is_current_and_used": AllowedSkip(
        reason_contains="SOFTSWITCH_PURE_PYTHON is set",
        why="a deliberate pure-Python run: the compiled core is off by request",
    ),
}


@dataclass(frozen=True)
class Skipped:
    nodeid: str
    kind: str  # "skipped" or "xfailed"
    reason: str
    allowed_because: str | None

    @property
    def allowed(self) -> bool:
        return self.allowed_because is not None


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    wasxfail = getattr(report, "wasxfail", None)
    if wasxfail is not None:
        return str(wasxfail) or "(no reason given)"
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@dataclass(eq=False)  # a plugin object: hashed by identity
class SkipPolicy:
    """Collects skips and xfails; fails the session for any that is not allowed."""

    allowed: dict[str, AllowedSkip]
    seen: list[Skipped] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)

    def _record(self, report: pytest.TestReport | pytest.CollectReport, kind: str) -> None:
        reason = _reason(report)
        entry = self.allowed.get(report.nodeid.split("[", 1)[0])
        because = entry.why if entry is not None and entry.reason_contains in reason else None
        self.seen.append(Skipped(report.nodeid, kind, reason, because))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        xfail = hasattr(report, "wasxfail")
        if report.skipped:
            self._record(report, "xfailed" if xfail else "skipped")
            self._outcome(report.nodeid, "xfailed" if xfail else "skipped")
        elif report.failed:
            self._outcome(report.nodeid, "failed" if report.when == "call" else "errors")
        elif report.when == "call":
            self._outcome(report.nodeid, "xpassed" if xfail else "passed")

    def _outcome(self, nodeid: str, outcome: str) -> None:
        """One outcome per test: a failure or error in any phase beats what came before."""
        if self.outcomes.get(nodeid) not in ("failed", "errors"):
            self.outcomes[nodeid] = outcome

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped:
            self._record(report, "skipped")
            self._outcome(report.nodeid, "skipped")

    def refused(self) -> list[Skipped]:
        return [s for s in self.seen if not s.allowed]

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if _is_xdist_worker(session.config):
            return  # the controller has the whole run's reports (and the worker's own, forwarded)
        if self.refused() and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        path = os.environ.get(REPORT_ENV)
        if path:
            counts: dict[str, int] = {}
            for outcome in self.outcomes.values():
                counts[outcome] = counts.get(outcome, 0) + 1
            lines = {**counts, "skips_allowed": len(self.seen) - len(self.refused()),
                     "skips_refused": len(self.refused()), "exitstatus": int(session.exitstatus)}
            Path(path).write_text("".join(f"{k}={v}\n" for k, v in sorted(lines.items())))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.seen:
            return
        tr = terminalreporter
        tr.section("skips and xfails (tests/conftest_skips.py)", sep="=", bold=True)
        for s in self.seen:
            verdict = f"allowed: {s.allowed_because}" if s.allowed else "NOT ALLOWED"
            tr.line(f"{s.kind.upper()} {s.nodeid}: {s.reason}  [{verdict}]", red=not s.allowed, yellow=s.allowed)
        refused = self.refused()
        if refused:
            tr.line(
                f"{len(refused)} skip(s)/xfail(s) not on ALLOWED_SKIPS: the run FAILS (exit status 1). In CI every "
                "dependency is installed; fix the cause, or allow-list the test in tests/conftest_skips.py "
                "with the reason it must carry and a comment saying why.",
                red=True, bold=True,
            )


def _is_xdist_worker(config: pytest.Config) -> bool:
    """A pytest-xdist worker process (it has ``workerinput``); the controller and a plain run have not."""
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("skip_policy"):
        config.pluginmanager.register(SkipPolicy(dict(ALLOWED_SKIPS)), "skip_policy")
