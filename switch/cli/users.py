"""``softswitch user create|list`` and ``softswitch customer-password``: the first logins.

The first admin of a fresh install can only be made here (the web UI and the API
need a login already). A generated password is printed once, alone on the last
line (scripts take ``tail -n1``); ``--password-file`` reads it from a file
instead, so it never appears in a shell history or a process list.
"""

from __future__ import annotations

import sys
from pathlib import Path

import argparse

from switch.operator_cli import OperatorError, guarded
from switch.settings import Settings

from .common import Subparsers, no_settings

__all__ = ["add", "customer_password", "read_password_file", "user_create", "user_list"]


def add(sub: Subparsers, parents: list[argparse.ArgumentParser]) -> None:
    usr = sub.add_parser("user", help="operator users (web UI logins): create, list", parents=parents)
    usr.set_defaults(configure=no_settings)
    verbs = usr.add_subparsers(dest="user_command", required=True)
    uc = verbs.add_parser("create", help="create an operator user (a generated password is printed once)",
                          parents=parents)
    uc.add_argument("--username", required=True)
    uc.add_argument("--role", choices=["admin", "support", "readonly"], required=True)
    uc.add_argument("--display-name", default="")
    uc.add_argument("--password-file", default=None, help="take the password from this file's first line")
    uc.set_defaults(handle=_create)
    verbs.add_parser("list", help="every operator user: username, role, state", parents=parents).set_defaults(
        handle=_list)
    cpw = sub.add_parser("customer-password", help="set a customer's Min side password (generated: printed once)",
                         parents=parents)
    cpw.add_argument("customer_id", help="the customer number, e.g. C1001")
    cpw.add_argument("--password-file", default=None, help="take the password from this file's first line")
    cpw.set_defaults(configure=no_settings, handle=_customer_password)


def _create(args: argparse.Namespace, settings: Settings) -> int:
    return guarded(user_create(settings, args.username, args.role, args.password_file, args.display_name), settings)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    return guarded(user_list(settings), settings)


def _customer_password(args: argparse.Namespace, settings: Settings) -> int:
    return guarded(customer_password(settings, args.customer_id, args.password_file), settings)


def read_password_file(path: str | None) -> str | None:
    """The password in ``path`` (its first line, without the newline), or None when no file is given."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise OperatorError(f"no such password file: {p}")
    text = p.read_text(encoding="utf-8")
    first = text.splitlines()[0] if text else ""
    if not first:
        raise OperatorError(f"the password file {p} is empty")
    return first


async def user_create(settings: Settings, username: str, role: str, password_file: str | None,
                      display_name: str = "") -> int:
    from switch.database import open_database
    from switch.store import repo_users

    password = read_password_file(password_file)
    db = await open_database(settings)
    sf = db.session_factory
    try:
        try:
            secret, info = await repo_users.create_user(sf, username, role, password=password,
                                                        display_name=display_name)
        except ValueError as err:  # UserExists too
            print(f"softswitch: {err}", file=sys.stderr)
            return 1
    finally:
        await db.close()
    if password is None:
        print(f"Created {info.role.value} user {info.username}. The password is shown only once:")
        print(secret)
    else:
        print(f"Created {info.role.value} user {info.username} with the password from {password_file}.")
    return 0


async def user_list(settings: Settings) -> int:
    from switch.database import open_database
    from switch.store import repo_users

    db = await open_database(settings)
    sf = db.session_factory
    try:
        users = await repo_users.list_users(sf)
    finally:
        await db.close()
    print(f"{'username':<24} {'role':<9} {'state':<9} display name")
    for u in users:
        print(f"{u.username:<24} {u.role.value:<9} {'enabled' if u.enabled else 'disabled':<9} {u.display_name}")
    return 0


async def customer_password(settings: Settings, customer: str, password_file: str | None) -> int:
    from switch.database import open_database
    from switch.store import repo_users

    password = read_password_file(password_file)
    db = await open_database(settings)
    sf = db.session_factory
    try:
        try:
            secret = await repo_users.set_customer_password(sf, customer, password)
        except LookupError as err:
            print(f"softswitch: {err.args[0]}", file=sys.stderr)
            return 1
        except ValueError as err:
            print(f"softswitch: {err}", file=sys.stderr)
            return 1
    finally:
        await db.close()
    if password is None:
        print(f"New Min side password for customer {customer}. It is shown only once:")
        print(secret)
    else:
        print(f"Set the Min side password of customer {customer} from {password_file}.")
    return 0
