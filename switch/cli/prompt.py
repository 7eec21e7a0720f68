"""``softswitch prompt install|remove|list``: operator recordings in place of shipped announcements."""

from __future__ import annotations

import argparse
import os

from switch.settings import Settings

from .common import Subparsers, no_settings, state_dir

__all__ = ["add"]


def add(sub: Subparsers, parents: list[argparse.ArgumentParser]) -> None:
    prompt = sub.add_parser("prompt", help="replace an announcement with a recording (docs/announcements.md)",
                            parents=parents)
    prompt.add_argument("--prompt-dir", default=os.environ.get("SOFTSWITCH_PROMPT_DIR"),
                        help="where recordings go: the switch's --prompt-dir (default STATE_DIR/prompts; "
                        "env SOFTSWITCH_PROMPT_DIR)")
    prompt.set_defaults(configure=no_settings, handle=_handle)
    ps = prompt.add_subparsers(dest="prompt_command", required=True)
    pi = ps.add_parser("install", help="install FILE.wav as prompt KEY in LANG (nb/en); heard on the next call")
    pi.add_argument("key")
    pi.add_argument("language", choices=["nb", "en"])
    pi.add_argument("file")
    pr = ps.add_parser("remove", help="go back to the shipped prompt")
    pr.add_argument("key")
    pr.add_argument("language", choices=["nb", "en"])
    ps.add_parser("list", help="every prompt key, its support code, and whether a recording replaces it")


def _handle(args: argparse.Namespace, settings: Settings) -> int:
    from switch.media.install import prompt_command

    if not args.prompt_dir:
        args.prompt_dir = str(state_dir(args.state_dir) / "prompts")
    return prompt_command(args)
