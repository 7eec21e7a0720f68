"""The skip policy (tests/conftest_skips.py) on real pytest runs of small suites.

Each case runs ``python -m pytest`` in a scratch directory whose conftest registers
the policy with its own allow-list, and checks pytest's exit status, the printed
summary and the report file scripts/test.sh reads. Running pytest as a child keeps
the suite's own session (and its skip policy) out of it.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from tests.conftest_skips import ALLOWED_SKIPS, REPORT_ENV

ROOT = Path(__file__).resolve().parents[1]

CONFTEST = '''
from tests.conftest_skips import AllowedSkip, SkipPolicy

def pytest_configure(config):
    config.pluginmanager.register(SkipPolicy({
        "test_cases.py::test_allowed": AllowedSkip("no frobnicator", "frobnicators are optional"),
    }), "skip_policy")
'''


def _run(tmp_path: Path, body: str, *args: str, also: str = "") -> tuple[int, str, dict[str, str]]:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_cases.py").write_text(textwrap.dedent(body))
    if also:
        (tmp_path / "test_also.py").write_text(textwrap.dedent(also))
    report = tmp_path / "report.txt"
    # no third-party plugins (asyncio, hypothesis): faster, and the policy must not depend on them
    env = {**os.environ, "PYTHONPATH": str(ROOT), REPORT_ENV: str(report), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "xfail_strict=true", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    counts = dict(ln.split("=", 1) for ln in report.read_text().splitlines()) if report.exists() else {}
    return proc.returncode, proc.stdout + proc.stderr, counts


def test_a_green_run_without_skips_passes(tmp_path: Path) -> None:
    rc, out, counts = _run(tmp_path, "def test_ok():\n    assert 1 + 1 == 2\n")
    assert rc == 0, out
    assert "skips and xfails" not in out
    assert counts == {"passed": "1", "skips_allowed": "0", "skips_refused": "0", "exitstatus": "0"}


def test_a_skip_fails_an_otherwise_green_run_and_says_why(tmp_path: Path) -> None:
    rc, out, counts = _run(tmp_path, """
        import pytest

        def test_ok():
            pass

        def test_needs_root():
            pytest.skip("network namespaces need root")
    """)
    assert rc == 1, out
    assert "SKIPPED test_cases.py::test_needs_root: network namespaces need root  [NOT ALLOWED]" in out
    assert "1 skip(s)/xfail(s) not on ALLOWED_SKIPS: the run FAILS" in out
    assert (counts["passed"], counts["skipped"], counts["skips_refused"], counts["exitstatus"]) == ("1", "1", "1", "1")


def test_every_way_to_skip_is_caught(tmp_path: Path) -> None:
    rc, out, counts = _run(tmp_path, """
        import unittest
        import pytest

        @pytest.mark.skip(reason="marked")
        def test_marked():
            pass

        @pytest.mark.skipif(True, reason="conditional")
        def test_skipif():
            pass

        @pytest.fixture
        def needs_tool():
            pytest.skip("from a fixture")

        def test_fixture(needs_tool):
            pass

        def test_unittest_style():
            raise unittest.SkipTest("unittest")

        @pytest.mark.parametrize("db", ["sqlite", "postgresql"])
        def test_param(db):
            if db == "postgresql":
                pytest.skip("no server")
    """)
    assert rc == 1, out
    for reason in ("marked", "conditional", "from a fixture", "unittest", "no server"):
        assert f": {reason}  [NOT ALLOWED]" in out, (reason, out)
    assert "SKIPPED test_cases.py::test_param[postgresql]" in out
    assert counts["skips_refused"] == "5" and counts["passed"] == "1", counts


def test_a_module_level_skip_is_caught(tmp_path: Path) -> None:
    rc, out, counts = _run(tmp_path, """
        import pytest

        pytest.importorskip("a_module_nobody_has")

        def test_never_runs():
            pass
    """, also="def test_elsewhere():\n    pass\n")
    assert rc == 1, out
    assert "SKIPPED test_cases.py: could not import 'a_module_nobody_has'" in out, out
    assert (counts["passed"], counts["skips_refused"]) == ("1", "1"), counts


def test_xfail_is_no_back_door(tmp_path: Path) -> None:
    rc, out, counts = _run(tmp_path, """
        import pytest

        @pytest.mark.xfail(reason="known bug")
        def test_expected_to_fail():
            assert False

        def test_imperative():
            pytest.xfail("later")
    """)
    assert rc == 1, out
    assert "XFAILED test_cases.py::test_expected_to_fail: known bug  [NOT ALLOWED]" in out
    assert "XFAILED test_cases.py::test_imperative: later  [NOT ALLOWED]" in out
    assert counts["xfailed"] == "2" and counts["skips_refused"] == "2", counts


def test_an_xfail_that_passes_fails(tmp_path: Path) -> None:
    rc, out, counts = _run(tmp_path, """
        import pytest

        @pytest.mark.xfail(reason="fixed by now")
        def test_fixed():
            pass
    """)
    assert rc == 1, out
    assert "[XPASS(strict)] fixed by now" in out, out
    assert counts["failed"] == "1", counts


def test_an_allow_listed_skip_passes_but_only_with_its_reason(tmp_path: Path) -> None:
    rc, out, counts = _run(tmp_path, """
        import pytest

        def test_allowed():
            pytest.skip("no frobnicator attached")
    """)
    assert rc == 0, out
    assert "SKIPPED test_cases.py::test_allowed: no frobnicator attached  [allowed: frobnicators are optional]" in out
    assert (counts["skips_allowed"], counts["skips_refused"]) == ("1", "0"), counts

    rc, out, counts = _run(tmp_path, """
        import pytest

        def test_allowed():
            pytest.skip("some other reason")
    """)
    assert rc == 1, out
    assert "some other reason  [NOT ALLOWED]" in out


def test_real_failures_keep_their_exit_status(tmp_path: Path) -> None:
    rc, out, counts = _run(tmp_path, """
        import pytest

        def test_broken():
            assert 1 == 2

        def test_skipped():
            pytest.skip("x")
    """)
    assert rc == 1, out
    assert (counts["failed"], counts["skips_refused"]) == ("1", "1"), counts


def test_under_xdist_the_controller_counts_every_worker_and_still_refuses(tmp_path: Path) -> None:
    """scripts/test.sh runs ``-n``: skips on the workers and a skipped module reach the controller's policy."""
    rc, out, counts = _run(tmp_path, """
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_ok(n):
            pass

        def test_needs_root():
            pytest.skip("network namespaces need root")

        def test_allowed():
            pytest.skip("no frobnicator attached")

        @pytest.mark.xfail(reason="known bug")
        def test_expected_to_fail():
            assert False
    """, "-p", "xdist", "-n", "2", also="""
        import pytest

        pytest.importorskip("a_module_nobody_has")
    """)
    assert rc == 1, out
    assert "bringing up nodes" in out, out  # xdist ran it
    assert "SKIPPED test_cases.py::test_needs_root: network namespaces need root  [NOT ALLOWED]" in out, out
    assert "SKIPPED test_cases.py::test_allowed: no frobnicator attached  [allowed: frobnicators are optional]" in out
    assert "XFAILED test_cases.py::test_expected_to_fail: known bug  [NOT ALLOWED]" in out
    assert "SKIPPED test_also.py: could not import 'a_module_nobody_has'" in out, out
    assert out.count("a_module_nobody_has'  [NOT ALLOWED]") == 1, out  # both workers collect it: listed once
    assert counts == {"passed": "6", "skipped": "3", "xfailed": "1", "skips_allowed": "1", "skips_refused": "3",
                      "exitstatus": "1"}, counts


def test_under_xdist_a_green_run_passes(tmp_path: Path) -> None:
    rc, out, counts = _run(tmp_path, """
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_ok(n):
            pass

        def test_allowed():
            pytest.skip("no frobnicator attached")
    """, "-p", "xdist", "-n", "2")
    assert rc == 0, out
    assert counts == {"passed": "4", "skipped": "1", "skips_allowed": "1", "skips_refused": "0", "exitstatus": "0"}, counts


def test_the_suite_runs_under_the_policy(request: pytest.FixtureRequest) -> None:
    """This very session has the policy registered, strict xfail, and a commented allow-list."""
    assert request.config.pluginmanager.has_plugin("skip_policy")
    assert request.config.getini("xfail_strict") is True
    for nodeid, entry in ALLOWED_SKIPS.items():
        path = ROOT / nodeid.split("::", 1)[0]
        assert path.exists(), f"allow-list entry for a file that is gone: {nodeid}"
        assert entry.reason_contains in path.read_text(), f"{nodeid} no longer skips with {entry.reason_contains!r}"
        assert entry.why.strip(), nodeid


def test_nothing_drops_tests_from_collection_instead() -> None:
    """The other way round the policy: tests left out before they could skip (CI runs them all)."""
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    addopts = " ".join(ini.get("addopts", [])) if isinstance(ini.get("addopts"), list) else ini.get("addopts", "")
    for flag in ("--ignore", "--deselect", "-m ", "-k ", "--co", "-p no:"):
        assert flag not in f"{addopts} ", f"pyproject addopts leave tests out: {addopts!r}"
    assert ini.get("testpaths") == ["tests"]
    for conftest in sorted((ROOT / "tests").rglob("conftest*.py")):
        tree = ast.parse(conftest.read_text())
        names = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) for t in node.targets
                 if isinstance(t, ast.Name)}
        hooks = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert not names & {"collect_ignore", "collect_ignore_glob"}, conftest
        assert not hooks & {"pytest_ignore_collect", "pytest_deselected"}, conftest
