"""``softswitch token ...``: bearer tokens for the operator and customer APIs.

One sub-subcommand per verb under ``token`` (``create``, ``list``, ``revoke``);
each sets ``handle`` on its own parser.
"""

from __future__ import annotations

import argparse

from switch.settings import Settings

from switch.operator_cli import guarded, token_list, token_revoke

from .common import Subparsers, no_settings

__all__ = ["add", "create_token"]


def add(sub: Subparsers, parents: list[argparse.ArgumentParser]) -> None:
    tok = sub.add_parser("token", help="API tokens: create, list, revoke", parents=parents)
    tok.set_defaults(configure=no_settings)
    verbs = tok.add_subparsers(dest="token_command", required=True)
    tc = verbs.add_parser("create", help="create a bearer token (printed alone on the last line)", parents=parents)
    tc.add_argument("--role", choices=["admin", "support", "readonly", "customer", "operator"], default=None,
                    help="admin (default), support, readonly, or customer (with --customer); "
                         "operator is the pre-roles name of admin")
    tc.add_argument("--customer", default=None, help="customer id (for --role customer)")
    tc.add_argument("--user", default=None, help="operator user the token belongs to: it acts with the user's "
                    "role and stops working when the user is disabled")
    tc.add_argument("--name", default="", help="label for the token")
    tc.set_defaults(handle=_create)
    tl = verbs.add_parser("list", help="every token: id, role, customer, label, created, last used, state",
                          parents=parents)
    tl.add_argument("--all", action="store_true", help="also revoked and expired tokens")
    tl.set_defaults(handle=_list)
    tr = verbs.add_parser("revoke", help="revoke a token by its id (from `token list`)", parents=parents)
    tr.add_argument("token_id", type=int)
    tr.set_defaults(handle=_revoke)


def _create(args: argparse.Namespace, settings: Settings) -> int:
    return guarded(create_token(settings, args.role, args.customer, args.name, user=args.user), settings)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    return guarded(token_list(settings, include_inactive=args.all), settings)


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    return guarded(token_revoke(settings, args.token_id), settings)


async def create_token(settings: Settings, role: str | None, customer: str | None, name: str, *,
                       user: str | None = None) -> int:
    from switch.database import open_database
    from switch.store import repo_tokens
    from switch.store.models import TokenRole

    if user is not None and role is not None:
        print("error: a token for --user has the user's role; leave out --role")
        return 1
    db = await open_database(settings)
    try:
        try:
            secret, info = await repo_tokens.create_token(db.session_factory, TokenRole(role or "admin"),
                                                          customer_ref=customer, username=user, label=name)
        except ValueError as err:
            print(f"error: {err}")
            return 1
        owner = f" for user {info.username}" if info.username else ""
        print(f"Created {info.effective_role} token{owner}. Keep it secret; it is shown only once:")
        print(secret)
        return 0
    finally:
        await db.close()
