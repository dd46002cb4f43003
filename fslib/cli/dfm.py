"""``fslib dfm``: dominant frequency maps.

The ``dfm`` command groups several subcommands. Each private module
``fslib/cli/_dfm_*.py`` that defines ``register(subparsers)`` adds one of them
to the ``dfm`` parser, in the same way as the top-level commands.
"""

from __future__ import annotations

import importlib
import pkgutil

from . import __path__ as _cli_path


def register(subparsers) -> None:
    """Add ``fslib dfm`` and its subcommands."""
    parser = subparsers.add_parser("dfm", help="dominant frequency maps: inspect, search, evaluate",
                                   description="Work with dominant frequency maps (DFMs).")
    dfm_subparsers = parser.add_subparsers(title="dfm commands", dest="dfm_command", metavar="DFM_COMMAND")
    for module_info in sorted(pkgutil.iter_modules(_cli_path), key=lambda m: m.name):
        if module_info.name.startswith("_dfm_"):
            module = importlib.import_module(f"{__package__}.{module_info.name}")
            module.register(dfm_subparsers)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
