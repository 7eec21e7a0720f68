"""``softswitch import FILE``: upsert customers, adapters, lines, trunks and routes; all or nothing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from switch.settings import Settings

from .common import Subparsers

__all__ = ["add", "configure", "handle", "import_file"]


def add(sub: Subparsers, parents: list[argparse.ArgumentParser]) -> None:
    imp = sub.add_parser("import", help="upsert customers, adapters and lines from a JSON or YAML file",
                         parents=parents)
    imp.add_argument("file")
    imp.add_argument("--realm", default="", help="digest realm the HA1 hashes are computed for")
    imp.set_defaults(configure=configure, handle=handle)


def configure(args: argparse.Namespace, settings: Settings) -> None:
    settings.realm = args.realm


def handle(args: argparse.Namespace, settings: Settings) -> int:
    from switch.operator_cli import OperatorError, guarded

    path = Path(args.file)
    if not path.is_file():
        raise OperatorError(f"import: no such file: {path}")
    return guarded(import_file(settings, path), settings)


async def import_file(settings: Settings, path: Path) -> int:
    from switch.database import open_database
    from switch.store import importer

    db = await open_database(settings)
    try:
        try:
            from switch.services.policy.importing import ForwardTargetCheck
            from switch.services.policy.validate import parse_forward_classes

            checks = (ForwardTargetCheck(parse_forward_classes(settings.forward_classes)),)
            doc = importer.load_import_file(path, checks=checks)
            report = await importer.import_document(db.session_factory, doc, db.secret_box, settings.effective_realm())
        except importer.ImportValidationError as err:
            print(err.summary(), file=sys.stderr)
            return 1
        print(f"imported {path}: {report.summary()}")
        return 0
    finally:
        await db.close()
