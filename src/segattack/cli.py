"""The ``segattack`` command: a thin layer over the library.

Units on the command line follow the paper: eps and step sizes are in 8-bit levels (``--eps 10`` means 10/255).
Each subcommand lives in ``segattack.commands.<name>`` and provides ``add_parser(subparsers)``; the parser's
``func`` attribute runs it and returns an exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence

from .errors import ModelError, SegattackError, UserError

__all__ = ["main", "build_parser", "COMMANDS", "UserError"]

#: Subcommand modules, in the order ``segattack --help`` lists them.
COMMANDS: tuple[str, ...] = (
    "demo", "run", "attack", "universal", "patch", "compare", "report", "eval", "train", "robustness", "leaderboard",
)  # fmt: skip

INTERRUPTED = "segattack: interrupted; finished work is saved, run the same command again to resume"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segattack",
        description="Adversarial examples against semantic segmentation networks (Fischer et al. 2017). "
        "eps values on the command line are in 8-bit levels (--eps 10 means 10/255).",
    )
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="log progress details to stderr; show tracebacks of errors"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"segattack.commands.{name}").add_parser(sub)
    return parser


#: Imported at start-up with Ctrl-C deferred: an extension module interrupted half-way through its import cannot
#: be imported again in the process, and the next import would fail with an ImportError traceback.
_STARTUP_IMPORTS = (
    "numpy", "torch", "scipy.ndimage", "PIL.Image", "matplotlib.figure", "tqdm", "safetensors.torch",
    "segattack.experiment", "segattack.report",
)  # fmt: skip


@contextlib.contextmanager
def _ctrl_c_deferred() -> Iterator[list[int]]:
    """Hold Ctrl-C back for the ``with`` block; the list it yields holds the signals that arrived."""
    arrived: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield arrived
        return
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: arrived.append(signum))
    try:
        yield arrived
    finally:
        signal.signal(signal.SIGINT, previous)


def _message(err: SegattackError, args: argparse.Namespace | None) -> str:
    """The one line for ``err``. A ``ModelError`` is prefixed with the model it concerns where its text does not
    name it: ``model SPEC: ...`` (its ``spec``, else ``--model``), ``the default model: ...`` for a command that takes
    ``--model`` and was given none; a command of several models (``compare --models``) names them in the text."""
    text = str(err).strip().replace("\n", " ") or type(err).__name__
    if isinstance(err, ModelError):
        spec = err.spec or getattr(args, "model", None)
        if spec:
            if spec not in text:
                text = f"model {spec}: {text}"
        elif args is not None and hasattr(args, "model"):
            text = f"the default model: {text}"
    return text


#: The options that name an output path, as ``argparse`` stores them and as the user types them.
_OUTPUT_OPTIONS = (("out", "--out"), ("export_dir", "--export-dir"), ("json", "--json"))


def _check_output_options(args: argparse.Namespace) -> None:
    """An output option given as an empty (or blank) text would write into the current directory: refused."""
    for attr, option in _OUTPUT_OPTIONS:
        value = getattr(args, attr, None)
        if isinstance(value, str) and not value.strip():
            raise UserError(f"{option} is empty; give the path to write to ({option} . for the current directory)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit code (0 done, 2 a user mistake, 130 interrupted).

    Every ``SegattackError`` raised below is printed here, as one line (its traceback with ``--verbose``); nothing
    else translates errors. A Ctrl-C at any moment, start-up included, ends with exit code 130 and no traceback.
    """
    args: argparse.Namespace | None = None
    try:
        with _ctrl_c_deferred() as arrived:  # start-up: parse, then the slow imports, with Ctrl-C held back
            parser = build_parser()
            args = parser.parse_args(argv)
            if getattr(args, "func", None):
                for name in _STARTUP_IMPORTS:
                    importlib.import_module(name)
        if arrived:
            raise KeyboardInterrupt
        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
        )
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        _check_output_options(args)
        from .allocator import tune_allocator

        tune_allocator()
        return int(args.func(args) or 0)
    except SegattackError as err:
        if args is not None and getattr(args, "verbose", False):
            traceback.print_exc()
        command = getattr(args, "command", None) if args is not None else None
        print(f"segattack{' ' + command if command else ''}: error: {_message(err, args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a command that keeps no partial work says so (its parser's ``interrupted``)
        print(getattr(args, "interrupted", None) or INTERRUPTED, file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
