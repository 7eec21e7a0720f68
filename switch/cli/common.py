"""What every ``softswitch`` command shares: the global options, the state directory, the Settings, logging.

The global options may come before the subcommand or after it: the main
parser carries their defaults, and each subcommand takes them again through
``parents=[common]`` with SUPPRESS defaults, so leaving one out after the
subcommand keeps what was given before it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TypeAlias

from switch.operator_cli import configure_logging
from switch.settings import Settings

__all__ = ["LOG_LEVELS", "Subparsers", "add_global_options", "no_settings", "settings_from", "setup_logging",
           "state_dir"]

#: what ``add_subparsers`` returns, each command's ``add`` gets it
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(value: str) -> str:
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(LOG_LEVELS)} (got {value!r})")
    return level


def add_global_options(p: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The options every subcommand takes, before or after its name (see the module docstring)."""
    def d(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    p.add_argument("--state-dir", default=d(os.environ.get("SOFTSWITCH_STATE_DIR")), metavar="DIR",
                   help="where the SQLite database and the key file live unless --database/--key-file say "
                   "otherwise; env SOFTSWITCH_STATE_DIR (default: ~/.local/state/softswitch, or the current "
                   "directory when it already holds softswitch.db)")
    p.add_argument("--database", default=d(os.environ.get("SOFTSWITCH_DATABASE_URL")),
                   help="SQLAlchemy URL (sqlite+aiosqlite:///path.db, postgresql+asyncpg://user@host/db); "
                   "env SOFTSWITCH_DATABASE_URL (default: softswitch.db in the state directory)")
    p.add_argument("--key-file", default=d(os.environ.get("SOFTSWITCH_KEY_FILE")),
                   help="key for secrets at rest; created (0600) if missing; env SOFTSWITCH_KEY_FILE "
                   "(default: softswitch.key in the state directory)")
    p.add_argument("--log-level", type=_log_level, default=d(os.environ.get("SOFTSWITCH_LOG_LEVEL", "INFO")),
                   help="DEBUG, INFO, WARNING, ERROR; env SOFTSWITCH_LOG_LEVEL")
    p.add_argument("--log-format", choices=["text", "json"], default=d(os.environ.get("SOFTSWITCH_LOG_FORMAT", "text")),
                   help="text, or json: one JSON object per line (ts, level, logger, message); env SOFTSWITCH_LOG_FORMAT")


def state_dir(given: str | None) -> Path:
    """The state directory: as given, else ~/.local/state/softswitch ($XDG_STATE_HOME), except
    that a current directory already holding softswitch.db (the old default) keeps being used."""
    if given:
        return Path(given).expanduser()
    if Path("softswitch.db").exists():
        return Path(".")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "softswitch"


def settings_from(args: argparse.Namespace) -> Settings:
    """The Settings of the global options; each command's ``configure`` adds its own."""
    s = Settings()
    home = state_dir(args.state_dir)
    if args.database is None or args.key_file is None:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    s.database_url = args.database or f"sqlite+aiosqlite:///{home / 'softswitch.db'}"
    s.key_file = args.key_file or str(home / "softswitch.key")
    s.log_level = args.log_level
    return s


def no_settings(args: argparse.Namespace, settings: Settings) -> None:
    """``configure`` of a command without flags of its own that touch the Settings."""


def setup_logging(args: argparse.Namespace, settings: Settings) -> None:
    configure_logging(settings.log_level, args.log_format)
