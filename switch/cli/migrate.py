"""``softswitch migrate``: create or upgrade the database schema, nothing else."""

from __future__ import annotations

import argparse

from switch.settings import Settings

from .common import Subparsers, no_settings

__all__ = ["add", "migrate_only"]


def add(sub: Subparsers, parents: list[argparse.ArgumentParser]) -> None:
    sub.add_parser("migrate", help="create or upgrade the database schema", parents=parents).set_defaults(
        configure=no_settings, handle=_handle)


def _handle(args: argparse.Namespace, settings: Settings) -> int:
    from switch.operator_cli import guarded

    return guarded(migrate_only(settings), settings)


async def migrate_only(settings: Settings) -> int:
    from switch.database import open_database

    db = await open_database(settings)
    await db.close()
    print("schema is at head")
    return 0
