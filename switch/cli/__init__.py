"""The ``softswitch`` command: run, import, token, user, customer-password, migrate, prompt.

Operators' scripts rely on these names and flags; keep them stable. One
module per command (``run``, ``importing``, ``tokens``, ``users``, ``migrate``, ``prompt``), each
with ``add(subparsers, parents)``: it adds its parser (``parents`` carry the global
options, so they may follow the subcommand too) and sets two defaults,
``configure(args, settings)`` (its flags into the Settings, before logging
starts) and ``handle(args, settings) -> exit code``. A new command is a new
module in ``COMMANDS``; a new global option goes into ``common``. An error the operator can fix
(``switch.operator_cli.OperatorError``) is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from switch.operator_cli import OperatorError

from . import billing, common, importing, migrate, prompt, run, tokens, users

__all__ = ["COMMANDS", "main", "parser"]

#: in the order ``softswitch --help`` lists them
COMMANDS: tuple[ModuleType, ...] = (run, importing, tokens, users, migrate, prompt, billing)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="softswitch", description="Softswitch control plane")
    common.add_global_options(p, defaults=True)
    shared = argparse.ArgumentParser(add_help=False)
    common.add_global_options(shared, defaults=False)
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add(sub, [shared])
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = common.settings_from(args)
    args.configure(args, settings)
    common.setup_logging(args, settings)
    try:
        code: int = args.handle(args, settings)
    except OperatorError as err:
        print(f"softswitch: {err}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
