"""Shared fixtures: a real ``softswitch run`` per test, on SQLite and on PostgreSQL.

``db_url`` comes from ``tests.conftest_db`` (parametrised over sqlite and
postgresql), so every test that uses ``switch`` runs once per database.
Data is imported and the token created *before* the switch starts: the switch
loads lines at start-up and only re-reads them every few seconds after that.
When a test fails, the switch's log is attached to the report.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.softswitch import SwitchProcess, create_token, import_file

pytest_plugins = ["tests.conftest_db", "tests.conftest_skips"]

#: SIPp 3.6.1 only computes MD5 digests and takes the *first* WWW-Authenticate
#: header; with the default "SHA-256,MD5" it aborts ("createAuthHeader:
#: authentication must use MD5 or AKAv1-MD5"). Tests that drive SIPp therefore
#: run the switch with MD5 only; tests with their own digest client override it
#: with @pytest.mark.switch_args("--digest-algorithms", "SHA-256,MD5").
SIPP_SWITCH_ARGS: tuple[str, ...] = ("--digest-algorithms", "MD5")

#: The ``switch`` fixture's shedding budget. The default (150 ms; unauthenticated requests are
#: shed past half of it) is about a saturated switch; on a test machine a neighbour (the other
#: pytest-xdist worker's processes, another checkout's run) can stall the switch's process that
#: long, and a REGISTER test then gets 503 instead of the 401/403 it is about. Shedding itself is
#: tested with its own budgets (tests/transport/test_shedding.py, the e2e tests that start their
#: own switch); a test that wants the default passes ``switch_args("--overload-budget", "150")``.
NEIGHBOUR_TOLERANT_SWITCH_ARGS: tuple[str, ...] = ("--overload-budget", "1000")

_LOGS = pytest.StashKey[list[Callable[[], tuple[str, str]]]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "switch_args(*args): extra arguments for `softswitch run` in the switch fixture")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the logs of every process the test started when it fails."""
    report = yield
    if report.failed:
        for provider in item.stash.get(_LOGS, []):
            title, text = provider()
            report.sections.append((title, text[-30_000:] or "(empty)"))
    return report


def attach_log(request: pytest.FixtureRequest, provider: Callable[[], tuple[str, str]]) -> None:
    """Register ``provider() -> (title, text)`` to be shown if the test fails."""
    request.node.stash.setdefault(_LOGS, []).append(provider)


# ------------------------------------------------------------------ data fixtures


@dataclass(frozen=True)
class LineData:
    port: int
    number: str
    password: str

    @property
    def lamp(self) -> str:
        return f"tel{self.port}"


@dataclass(frozen=True)
class AdapterData:
    customer_id: str
    mac: str
    model: str
    lines: tuple[LineData, ...]

    def document(self) -> dict[str, object]:
        """The `softswitch import` document for this adapter and its customer."""
        return {
            "customers": [
                {
                    "id": self.customer_id,
                    "name": "Kari Nordmann",
                    "language": "nb",
                    "adapters": [
                        {
                            "mac": self.mac,
                            "model": self.model,
                            "lines": [
                                {"port": li.port, "number": li.number, "password": li.password}
                                for li in self.lines
                            ],
                        }
                    ],
                }
            ]
        }


ADAPTER = AdapterData(
    customer_id="C1001",
    mac="00:0E:08:AB:CD:01",
    model="spa112",
    lines=(LineData(1, "22000001", "Tel1-secret-01"), LineData(2, "22000002", "Tel2-secret-02")),
)


@dataclass(frozen=True)
class SwitchHome:
    """Where one switch lives: its database, key file and working directory."""

    db_url: str
    dir: Path

    @property
    def key_file(self) -> Path:
        return self.dir / "softswitch.key"


@pytest.fixture
def switch_home(db_url: str, tmp_path: Path) -> SwitchHome:
    home = tmp_path / "switch"
    home.mkdir()
    return SwitchHome(db_url=db_url, dir=home)


@pytest.fixture
def imported_adapter(switch_home: SwitchHome) -> AdapterData:
    """One customer with one two-line adapter, imported with `softswitch import`."""
    import_file(switch_home.db_url, ADAPTER.document(), key_file=switch_home.key_file, cwd=switch_home.dir)
    return ADAPTER


def _switch_args(request: pytest.FixtureRequest) -> list[str]:
    args = [*SIPP_SWITCH_ARGS, *NEIGHBOUR_TOLERANT_SWITCH_ARGS]
    for marker in reversed(list(request.node.iter_markers("switch_args"))):
        args += [str(a) for a in marker.args]
    return args


@pytest.fixture
def _booting_switch(
    request: pytest.FixtureRequest, switch_home: SwitchHome, imported_adapter: AdapterData
) -> Iterator[SwitchProcess]:
    """The switch process, launched but not yet known to be ready (see ``switch``)."""
    proc = SwitchProcess(
        db_url=switch_home.db_url,
        workdir=switch_home.dir,
        key_file=switch_home.key_file,
        extra_args=_switch_args(request),
    )
    attach_log(request, lambda: (f"softswitch log ({proc.log_path})", proc.log_text()))
    try:
        yield proc.launch()
    finally:
        proc.stop()


@pytest.fixture
def api_token(switch_home: SwitchHome, imported_adapter: AdapterData, _booting_switch: SwitchProcess) -> str:
    """An operator bearer token from `softswitch token create --role operator`.

    Created while the switch boots (the import has already migrated the schema):
    each CLI start costs seconds, and tokens are looked up in the database on use.
    """
    return create_token(switch_home.db_url, key_file=switch_home.key_file, cwd=switch_home.dir)


@pytest.fixture
def switch(_booting_switch: SwitchProcess, api_token: str) -> SwitchProcess:
    """A running `softswitch run` on free ports with the adapter imported and a token made;
    stopped by PID (SIGTERM, then SIGKILL) after the test, pass or fail."""
    _booting_switch.wait_ready()
    return _booting_switch
