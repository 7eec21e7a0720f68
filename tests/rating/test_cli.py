"""``softswitch tariff import|list`` and ``softswitch rerate``, through the real command-line entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from switch.cli import main
from switch.services.rating.tariff import bundled_tariff_paths


def run(capsys: pytest.CaptureFixture[str], db_url: str, tmp_path: Path, *args: str) -> tuple[int, str]:
    code = main(["--database", db_url, "--key-file", str(tmp_path / "k.key"), *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_tariff_import_list_and_rerate(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [bundled] = bundled_tariff_paths()
    code, out = run(capsys, db_url, tmp_path, "tariff", "import", str(bundled))
    assert code == 0 and "tariff version 1" in out and ": imported;" in out, out
    code, out = run(capsys, db_url, tmp_path, "tariff", "import", str(bundled))
    assert code == 0 and "already imported (unchanged)" in out
    code, out = run(capsys, db_url, tmp_path, "tariff", "list")
    assert code == 0 and "version 1  valid from 2015-10-31T00:00:00+01:00" in out
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 2\nvalid_from: '2027-01-01T00:00:00'\nzones:\n- {id: x, start_ore: -5, per_minute_ore: 1,"
                      " countries: [Atlantis]}\n", encoding="utf-8")
    code, out = run(capsys, db_url, tmp_path, "tariff", "import", str(broken))
    assert code == 1 and "nothing was stored" in out
    assert "valid_from: needs a time zone" in out and "'Atlantis' is not in countries.yaml" in out
    assert "zones[0] (x).start_ore: must be 0..10000000 øre" in out
    code, out = run(capsys, db_url, tmp_path, "rerate", "--from", "2026-11-01T00:00:00+01:00", "--to",
                     "2026-12-01T00:00:00+01:00")
    assert code == 0 and "re-rated 0 calls" in out and "totals rebuilt for 1 month(s)" in out, out


@pytest.mark.parametrize(("args", "words"), [
    (("--from", "2026-11-01", "--to", "2026-12-01T00:00:00+01:00"), "--from needs a time zone"),
    (("--from", "yesterday", "--to", "2026-12-01T00:00:00+01:00"), "--from must be an ISO 8601 time"),
    (("--from", "2026-12-01T00:00:00+01:00", "--to", "2026-11-01T00:00:00+01:00"), "--to must be after --from"),
])
def test_rerate_refuses_bad_times_before_touching_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], words: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'never.db'}"
    code, out = run(capsys, url, tmp_path, "rerate", *args)
    assert code == 2 and words in out
    assert not (tmp_path / "never.db").exists()


def test_tariff_import_of_a_missing_file_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", tmp_path, "tariff", "import", "/no/such.yaml")
    assert code == 1 and "no such file: /no/such.yaml" in out


def _configured(*flags: str):  # type: ignore[no-untyped-def]
    from switch.cli import common, parser

    args = parser().parse_args(["run", *flags])
    settings = common.settings_from(args)
    args.configure(args, settings)
    return settings


def test_run_flags_for_billing_and_metrics() -> None:
    s = _configured("--billing-timezone", "Europe/Stockholm", "--credit-cut-margin", "0",
                    "--metrics-token", "a-long-scrape-secret", "--metrics-listen", "10.0.0.5")
    assert (s.billing_timezone, s.credit_cut_margin_ore, s.metrics_token, s.metrics_listen) == (
        "Europe/Stockholm", 0, "a-long-scrape-secret", ("10.0.0.5", 9464))
    for flags, words in ((("--billing-timezone", "Mars/Olympus"), "unknown time zone"),
                         (("--credit-cut-margin", "-1"), "0 or more"),
                         (("--metrics-token", "short"), "at least 16")):
        with pytest.raises(SystemExit, match=words):
            _configured(*flags)
