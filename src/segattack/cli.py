"""The ``segattack`` command: a thin layer over the library.

Units on the command line follow the paper: eps and step sizes are in 8-bit levels (``--eps 10`` means 10/255).
Each subcommand lives in ``segattack.commands.<name>`` and provides ``add_parser(subparsers)``; the parser's
``func`` attribute runs it and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

#: Subcommand modules, in the order ``segattack --help`` lists them.
COMMANDS: tuple[str, ...] = ("demo", "run", "attack", "universal", "report", "eval", "train")


class UserError(Exception):
    """A mistake in the user's input: printed as one line, exit code 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segattack",
        description="Adversarial examples against semantic segmentation networks (Fischer et al. 2017). "
        "eps values on the command line are in 8-bit levels (--eps 10 means 10/255).",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log progress details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"segattack.commands.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"segattack {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "segattack: interrupted; finished work is saved, run the same command again to resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
