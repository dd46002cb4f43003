"""The ``fslib`` command line.

Each module in this package that defines ``register(subparsers)`` adds one
subcommand; the module's ``register`` creates a parser and sets
``func=handler`` on it, where ``handler(args)`` returns an exit code.
User errors (:class:`fslib.errors.FslibError`, missing files) print one line
on standard error and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from typing import Sequence

from .. import __version__
from ..errors import FslibError


class _Parser(argparse.ArgumentParser):
    """Argument parser whose usage errors are one line that points to ``--help``.

    Subcommand parsers are made with the class of their parent, so every
    ``fslib`` command shares it.
    """

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}. Run '{self.prog} --help' for the options.\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every subcommand module of this package."""
    parser = _Parser(
        prog="fslib",
        description="Frequency shortcuts in image classification: data, filtering, "
        "class-wise spectra, dominant frequency maps, training and the companion book.",
    )
    parser.add_argument("--version", action="version", version=f"fslib {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log more (-v info, -vv debug); default: warnings only")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (FslibError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
            PermissionError) as exc:
        print(f"{_command_name(args)}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{_command_name(args)}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of the output (for example `head`) closed the pipe. Later writes to stdout go
        # to the null device, so that the interpreter's final flush raises nothing more.
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        return 141


def _command_name(args: argparse.Namespace) -> str:
    """Return the command as typed, e.g. ``fslib dfm search``."""
    words = ["fslib", args.command, getattr(args, "dfm_command", None), getattr(args, "book_command", None)]
    return " ".join(word for word in words if word)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
