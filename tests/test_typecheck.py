"""The whole code base type-checks under ``mypy --strict`` (pyproject's [tool.mypy]).

The SIP core is compiled with mypyc, which checks it anyway; the rest
(services, store, provisioning; and the shared test/bench harness) had drifted to 14 errors before this test, among
them calls whose None result was used and a protocol a frozen dataclass could not
satisfy. Takes a few seconds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_strict_has_no_errors(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"), "switch", "provisioning", "feature_codes",
         "harness"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found" in proc.stdout
