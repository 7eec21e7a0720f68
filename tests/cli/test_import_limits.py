"""``softswitch import``: no field of the file may hold more than 1,000 characters, at any depth.

Fields without a tighter rule of their own (a trunk's host, say) used to be
stored at any length; now the file is refused naming the field, and nothing of
it is written.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from harness.softswitch import softswitch_cmd
from switch.store import models as m
from switch.store.engine import make_engine, make_session_factory
from switch.store.import_validation import MAX_TEXT, ImportValidationError, parse_import_document


def _doc(host: str) -> dict[str, object]:
    return {"customers": [{"id": "C1", "name": "Kari", "adapters": []}],
            "trunks": [{"name": "carrier", "host": host}]}


def test_a_long_string_anywhere_is_an_issue_at_its_path() -> None:
    with pytest.raises(ImportValidationError) as caught:
        parse_import_document(_doc("h" * (MAX_TEXT + 1)))
    assert [(i.path, i.message) for i in caught.value.issues] == [
        ("trunks[0].host", f"longer than {MAX_TEXT} characters")]
    parse_import_document(_doc("sip.example.net"))  # the same file with a sane host passes this check


async def _customers(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        async with make_session_factory(engine)() as session:
            return int((await session.execute(select(func.count()).select_from(m.Customer))).scalar_one())
    finally:
        await engine.dispose()


@pytest.mark.e2e
def test_softswitch_import_refuses_the_file_and_stores_nothing(tmp_path: Path) -> None:
    import subprocess

    db_url = f"sqlite+aiosqlite:///{tmp_path / 'sw.db'}"
    path = tmp_path / "customers.json"
    path.write_text(json.dumps(_doc("h" * 5000)))
    proc = subprocess.run([*softswitch_cmd(), "--database", db_url, "--key-file", str(tmp_path / "k.key"), "import",
                           str(path)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert f"trunks[0].host: longer than {MAX_TEXT} characters" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    if (tmp_path / "sw.db").exists():
        assert asyncio.run(_customers(db_url)) == 0
